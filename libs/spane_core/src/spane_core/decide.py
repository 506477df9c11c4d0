"""``decide``: the rules of an execution, as a pure function from (state, command) to events.

Each decision evolves a working copy of the state as it emits, so that one command can cascade (a node completes,
its children become ready, some are skipped, the execution completes) into one atomic list of events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, assert_never

from spane_core.commands import (
    Abort,
    Cancel,
    ChildFinished,
    Command,
    Complete,
    Context,
    Defer,
    DeleteDeadLetter,
    Fail,
    FireExecutionTimer,
    FireTimer,
    MarkStarted,
    Pause,
    Resume,
    RetryDeadLetter,
    SetTimeout,
    Signal,
    Start,
    WorkerLost,
)
from spane_core.decide_abort import abort, started
from spane_core.decide_deferral import is_deferred, on_defer, requeue
from spane_core.decide_dlq import delete_dead_letter, retry_dead_letter
from spane_core.decide_options import fire_execution_timer, reuse, set_timeout
from spane_core.decide_signal import WAIT, on_signal, start_waiting, timed_out, waits_for_signal
from spane_core.decide_subflow import SUB_WORKFLOW, child_finished, start_child
from spane_core.definition import NodeDef, Workflow
from spane_core.errors import StateConflict
from spane_core.events import (
    ErrorInfo,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    NodeCancelled,
    NodeCompleted,
    NodeDeadLettered,
    NodeFailed,
    NodeQueued,
    NodeSkipped,
    NodeStarted,
    NodeWaiting,
)
from spane_core.frontier import SMALL_GRAPH, children_of_resolved
from spane_core.ids import NodeId
from spane_core.payloads import delay_until, execution_output, node_input
from spane_core.retry import backoff_ms
from spane_core.state import (
    ACTIVE,
    PENDING_NODE,
    RESOLVED,
    UNFINISHED,
    ExecutionState,
    ExecutionStatus,
    NodeState,
    NodeStatus,
    evolve,
    evolve_owned,
)

# Node types that the engine itself carries out, without a worker.
ENGINE_NODE_TYPES = frozenset({"delay", SUB_WORKFLOW, WAIT})


class _Decision:
    def __init__(self, state: ExecutionState | None, workflow: Workflow, ctx: Context, owned: bool = False) -> None:
        self.state = state
        self.owned = owned  # whether ``state`` is this decision's own copy, evolved in place
        self.workflow = workflow
        self.ctx = ctx
        self.events: list[Event] = []
        self.resolved: list[NodeId] = []  # nodes resolved since the last advance: their children may be ready
        self.look_at_all = state is None  # a start (or a resume) looks at every node

    @property
    def s(self) -> ExecutionState:
        assert self.state is not None
        return self.state

    def emit(self, event: Event) -> None:
        self.events.append(event)
        node_id: NodeId | None = getattr(event, "node_id", None)
        before = None if node_id is None or self.state is None else self.state.nodes.get(node_id)
        # The first event copies the state once; the next ones change that copy in place.
        if self.owned:
            self.state = evolve_owned(self.state, event, self.ctx.now)
        else:
            self.state = evolve(self.state, event, self.ctx.now)
            self.owned = True
        if node_id is not None:
            after = self.state.nodes.get(node_id)
            newly = after is not before and after is not None and after.status in RESOLVED
            if newly and (before is None or before.status not in RESOLVED):
                self.resolved.append(node_id)
        elif isinstance(event, ExecutionResumed):
            self.look_at_all = True

    def look_at_everything(self) -> None:
        """Have the next ``advance`` look at every node (not only the children of those resolved since)."""
        self.look_at_all = True

    def advance(self) -> None:
        """Start what has become ready, skip what can no longer run, and complete the execution when all is done.

        Call it after the events that resolve nodes: it looks at their children only (see ``frontier``).
        """
        if self.s.status is not ExecutionStatus.RUNNING:
            return
        # Runs after every result: written for speed (a fan-out of 10,000 runs it 10,000 times).
        graph = self.workflow.graph
        ready: list[NodeId] = []
        limit = self.workflow.definition.max_concurrency
        everything = self.look_at_all or limit is not None or len(graph.order) <= SMALL_GRAPH
        if everything:
            nodes = self.s.nodes
            candidates: Iterable[NodeId] = [
                n for n in graph.order if nodes.get(n, PENDING_NODE).status is NodeStatus.PENDING
            ]
        else:
            candidates = children_of_resolved(graph, self.resolved, lambda: self.s.nodes)
        for node_id in candidates:  # in topological order, so that a skip reaches the nodes after it
            nodes = self.s.nodes  # again each time: a skip below changes the state
            parents = graph.parents[node_id]
            if not parents:
                ready.append(node_id)
                continue
            # Parents tend to finish in the order they were queued: asking the last one first usually finds an
            # unfinished one at once, where a join of 100 would otherwise check ~50 parents per result.
            if not _all_resolved(nodes, reversed(parents)):
                continue
            if any(self._edge_taken(p, node_id) for p in parents):
                ready.append(node_id)
            else:
                self.emit(NodeSkipped(node_id=node_id))
        if everything:  # every node after those resolved was looked at
            self.look_at_all = False
            self.resolved.clear()
        # A deferred node keeps its place: it is queued again when its limit lets it through.
        active = 0 if limit is None else sum(1 for n in self.s.nodes.values() if n.status in ACTIVE or is_deferred(n))
        for node_id in ready:
            node = graph.nodes[node_id]
            if node.type in ENGINE_NODE_TYPES:
                self._run_in_engine(node)
                continue
            if limit is not None and active >= limit:
                continue
            self.emit(NodeQueued(node_id=node_id, attempt=self.s.node(node_id).attempt + 1))
            active += 1
        # Backwards: the last nodes of the order (a join, an exit) are the ones most likely still unfinished.
        # (A validated graph is acyclic, so its order holds every node.)
        if _all_resolved(self.s.nodes, reversed(graph.order)):
            self.emit(ExecutionCompleted(output=execution_output(self.s, self.workflow)))

    def _edge_taken(self, parent: NodeId, child: NodeId) -> bool:
        p = self.s.node(parent)
        if p.status is NodeStatus.SKIPPED:
            return False
        return p.next_nodes is None or child in p.next_nodes

    def _run_in_engine(self, node: NodeDef) -> None:
        if node.type == "delay":
            until = delay_until(node.config, node_input(self.s, self.workflow, node.id), self.ctx.now)
            self.emit(NodeStarted(node_id=node.id, attempt=1, lease=""))
            self.emit(NodeWaiting(node_id=node.id, reason="delay", until=until))
        else:  # a sub-workflow or a wait: queued, then the engine carries it out
            self.queue(node.id, self.s.node(node.id).attempt + 1)

    def queue(self, node_id: NodeId, attempt: int, **override: Any) -> None:
        """Queue ``attempt`` of a node (a retry, or a rerun): a task for a worker, a sub-workflow's child, or a
        wait for a signal."""
        self.emit(NodeQueued(node_id=node_id, attempt=attempt, **override))
        node = self.workflow.graph.nodes[node_id]
        if node.type == SUB_WORKFLOW:
            start_child(self, node_id, attempt)
        elif node.type == WAIT:
            start_waiting(self, node, attempt, self.ctx.now)

    def run_due(self) -> None:
        _run_due(self)

    def fail_node(self, node_id: NodeId, error: ErrorInfo, retryable: bool) -> None:
        node = self.workflow.node(node_id)
        policy = node.retry
        attempt = self.s.node(node_id).attempt
        tries = attempt - self.s.node(node_id).tries_before
        if retryable and tries < policy.max_attempts:
            retry_at = self.ctx.now + backoff_ms(policy.backoff, tries, self.ctx.jitter)
            self.emit(NodeFailed(node_id=node_id, attempt=attempt, error=error, will_retry=True, retry_at=retry_at))
            return
        if policy.continue_on_fail:
            self.emit(NodeFailed(node_id=node_id, attempt=attempt, error=error, continued_on_fail=True))
            self.advance()
            return
        self.emit(NodeFailed(node_id=node_id, attempt=attempt, error=error))
        self.emit(
            NodeDeadLettered(
                node_id=node_id, attempt=attempt, error=error, input=node_input(self.s, self.workflow, node_id)
            )
        )
        if self.s.status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            message = f"node {node_id!r} failed after {attempt} attempt(s): {error.message}"
            self.emit(ExecutionFailed(error=ErrorInfo(message=message, type=error.type), node_id=node_id))


def decide(state: ExecutionState | None, workflow: Workflow, command: Command, ctx: Context) -> list[Event]:
    """The events that ``command`` causes; ``[]`` when it changes nothing (a stale or repeated result).

    Raises ``StateConflict`` when a user's command is not allowed in the current state.
    """
    return decide_and_evolve(state, workflow, command, ctx)[0]


def decide_and_evolve(
    state: ExecutionState | None, workflow: Workflow, command: Command, ctx: Context, owned: bool = False
) -> tuple[list[Event], ExecutionState | None]:
    """``decide``, and the state after its events (each evolved at ``ctx.now``): deciding evolves them anyway,
    so a caller that needs the new state need not fold the events again.

    ``owned``: the caller gives ``state`` up (a state an earlier decision returned, that nothing else holds), so
    that it is evolved in place instead of copied; else ``state`` is never changed.
    """
    d = _Decision(state, workflow, ctx, owned)
    if isinstance(command, Start):
        if state is not None:
            return [], state  # started already: starting is idempotent
        d.emit(started(workflow, command, ctx.now))
        reuse(d, command)
        d.advance()
        return d.events, d.state
    if isinstance(command, Abort):  # the rule lives in decide_abort; a refused start is recorded there too
        for event in abort(state, workflow, command):
            d.emit(event)
        return d.events, d.state
    if state is None:
        raise StateConflict("the execution has not started")
    _decide_on(d, state, command)
    return d.events, d.state


def _decide_on(d: _Decision, state: ExecutionState, command: Command) -> None:
    status = state.status
    match command:
        case Start():
            pass
        case MarkStarted(node_id=node_id, queued_seq=queued_seq):
            node = state.node(node_id)
            # Only the task of the latest node.queued may start the node; a reclaimed task may restart it.
            if status is not ExecutionStatus.RUNNING or node.queued_seq != queued_seq:
                return
            if node.status is NodeStatus.QUEUED or (node.status is NodeStatus.RUNNING and not command.first_only):
                lease = command.lease or d.ctx.lease
                d.emit(NodeStarted(node_id=node_id, attempt=node.attempt, lease=lease, started_at=command.started_at))
        case Complete(node_id=node_id, lease=lease, output=output, next_nodes=next_nodes):
            if not _holds_lease(state, node_id, lease):
                return
            children = d.workflow.graph.children[node_id]
            chosen = None if next_nodes is None else [c for c in children if c in next_nodes]
            d.emit(
                NodeCompleted(node_id=node_id, attempt=state.node(node_id).attempt, output=output, next_nodes=chosen)
            )
            d.advance()
        case Fail(node_id=node_id, lease=lease, error=error, retryable=retryable):
            if not _holds_lease(state, node_id, lease):
                return
            d.fail_node(node_id, error, retryable)
        case WorkerLost(node_id=node_id, queued_seq=queued_seq, deliveries=deliveries):
            node = state.node(node_id)
            if node.queued_seq != queued_seq or node.status not in (NodeStatus.QUEUED, NodeStatus.RUNNING):
                return
            if status in (ExecutionStatus.CANCELLED, ExecutionStatus.COMPLETED, ExecutionStatus.PAUSED):
                return  # paused: the task waits for the resume; a worker reclaiming it then restarts the node
            message = f"the worker running this node was lost {deliveries} times (killed, crashed or out of memory)"
            d.fail_node(node_id, ErrorInfo(message=message, type="WorkerLost"), retryable=True)
        case FireTimer(node_id=node_id, attempt=attempt):
            node = state.node(node_id)
            if status is not ExecutionStatus.RUNNING or node.attempt != attempt:
                return  # paused: resume runs what is due; otherwise the timer is stale
            if node.status is NodeStatus.RETRYING:
                d.queue(node_id, attempt + 1)
            elif is_deferred(node):
                d.emit(requeue(node_id, node))
            elif waits_for_signal(d.workflow, state, node_id):
                timed_out(d, node_id)
            elif node.status is NodeStatus.WAITING and node.child_execution_id is None:
                d.emit(NodeCompleted(node_id=node_id, attempt=attempt, output=node_input(state, d.workflow, node_id)))
                d.advance()
        case Pause():
            if status is not ExecutionStatus.RUNNING:
                raise StateConflict(f"cannot pause an execution that is {status}")
            d.emit(ExecutionPaused())
        case Resume():
            if status is not ExecutionStatus.PAUSED:
                raise StateConflict(f"cannot resume an execution that is {status}")
            d.emit(ExecutionResumed())
            _run_due(d)
            d.advance()
        case Cancel(reason=reason):
            if status not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED, ExecutionStatus.SCHEDULED):
                raise StateConflict(f"cannot cancel an execution that is {status}")
            d.emit(ExecutionCancelled(reason=reason))
            for node_id in d.workflow.graph.nodes:
                if state.node(node_id).status in UNFINISHED:
                    d.emit(NodeCancelled(node_id=node_id))
        case ChildFinished():
            child_finished(d, state, command)
        case RetryDeadLetter():
            retry_dead_letter(d, state, command)
        case DeleteDeadLetter():
            delete_dead_letter(d, state, command)
        case Abort():
            pass  # decided in decide_and_evolve, which also takes it before a start
        case SetTimeout():
            set_timeout(d, state, command)
        case FireExecutionTimer():
            fire_execution_timer(d, state, command)
        case Defer():
            for event in on_defer(state, command):
                d.emit(event)
        case Signal():
            on_signal(d, state, command)
        case _:
            assert_never(command)


def _all_resolved(nodes: Mapping[NodeId, NodeState], node_ids: Iterable[NodeId]) -> bool:
    get = nodes.get  # a plain loop: called for every candidate of every result, all() over a generator costs more
    for node_id in node_ids:  # noqa: SIM110
        if get(node_id, PENDING_NODE).status not in RESOLVED:
            return False
    return True


def _holds_lease(state: ExecutionState, node_id: NodeId, lease: str) -> bool:
    node = state.node(node_id)
    return (
        state.status not in (ExecutionStatus.CANCELLED, ExecutionStatus.COMPLETED)
        and node.status is NodeStatus.RUNNING
        and node.lease == lease
    )


def _run_due(d: _Decision) -> None:
    """On resume: queue again what was queued but not started, and run the timers that fell due meanwhile."""
    now = d.ctx.now
    for node_id, node in list(d.s.nodes.items()):
        if node.status is NodeStatus.QUEUED:
            d.emit(NodeQueued(node_id=node_id, attempt=node.attempt))
        elif node.status is NodeStatus.RETRYING and node.retry_at is not None and node.retry_at <= now:
            d.queue(node_id, node.attempt + 1)
        elif is_deferred(node) and node.wait_until is not None and node.wait_until <= now:
            d.emit(requeue(node_id, node))
        elif node.wait_until is not None and node.wait_until <= now and waits_for_signal(d.workflow, d.s, node_id):
            timed_out(d, node_id)
        elif node.status is NodeStatus.WAITING and node.wait_until is not None and node.wait_until <= now:
            d.emit(NodeCompleted(node_id=node_id, attempt=node.attempt, output=node_input(d.s, d.workflow, node_id)))
