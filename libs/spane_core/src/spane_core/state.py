"""What an execution is at a point of its log, and ``evolve``, the one function that applies an event."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, assert_never

import msgspec

from spane_core.deferral import DEFER_REASONS
from spane_core.events import (
    DeadLetterDeleted,
    Envelope,
    ErrorInfo,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionDeadlineSet,
    ExecutionDue,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionStarted,
    NodeCancelled,
    NodeCompleted,
    NodeDeadLettered,
    NodeFailed,
    NodeQueued,
    NodeSkipped,
    NodeStarted,
    NodeWaiting,
)
from spane_core.ids import ExecutionId, NodeId, WorkflowId


class ExecutionStatus(StrEnum):
    SCHEDULED = "scheduled"  # started with a ``runAt`` still to come
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_EXECUTION = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


class NodeStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"  # a try failed; the next one waits for its backoff timer
    WAITING = "waiting"  # a delay or a sub-workflow
    COMPLETED = "completed"
    FAILED = "failed"  # failed for good, with continueOnFail: resolved, its children run
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"


RESOLVED = frozenset({NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED})
ACTIVE = frozenset({NodeStatus.QUEUED, NodeStatus.RUNNING})
UNFINISHED = frozenset(
    {NodeStatus.PENDING, NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.RETRYING, NodeStatus.WAITING}
)


class NodeState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: NodeStatus = NodeStatus.PENDING
    attempt: int = 0
    queued_seq: int = 0  # the seq of the node.queued event whose task may start this node
    lease: str = ""
    started_at: int | None = None
    finished_at: int | None = None
    output: Any = None
    error: ErrorInfo | None = None
    next_nodes: list[NodeId] | None = None
    retry_at: int | None = None
    wait_until: int | None = None
    child_execution_id: ExecutionId | None = None
    input_override: Any = None
    has_input_override: bool = False
    deferred: str | None = None  # why a waiting node was deferred by a limit (spane_core.deferral); None: it was not
    dead_letter_deleted: bool = False  # the dead letter of the current attempt was dropped from the queue
    tries_before: int = 0  # attempts made before the dead letter last retried: the retry policy counts after them


PENDING_NODE = NodeState()


class ExecutionState(msgspec.Struct, kw_only=True, omit_defaults=True):
    execution_id: ExecutionId
    workflow_id: WorkflowId
    workflow_version: int
    status: ExecutionStatus = ExecutionStatus.RUNNING
    seq: int = 0  # the seq of the last event applied
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    parent_execution_id: ExecutionId | None = None
    parent_node_id: NodeId | None = None
    depth: int = 0
    idempotency_key: str | None = None
    priority: int = 5
    deadline: int | None = None  # epoch ms
    run_at: int | None = None  # epoch ms, while scheduled
    rerun_of: ExecutionId | None = None
    started_at: int = 0
    finished_at: int | None = None
    nodes: dict[NodeId, NodeState] = msgspec.field(default_factory=dict)
    traceparent: str | None = None  # from execution.started: every commit of the execution carries it on

    def node(self, node_id: NodeId) -> NodeState:
        return self.nodes.get(node_id, PENDING_NODE)


def _with_node(state: ExecutionState, node_id: NodeId, **changes: Any) -> ExecutionState:
    # In place: ``evolve_owned``'s caller owns ``state`` and its nodes dict (one copy per decision, not per event).
    state.nodes[node_id] = msgspec.structs.replace(state.node(node_id), **changes)
    state.seq += 1
    return state


def _with(state: ExecutionState, **changes: Any) -> ExecutionState:
    for name, value in changes.items():
        setattr(state, name, value)
    state.seq += 1
    return state


def own(state: ExecutionState) -> ExecutionState:
    """A copy of ``state`` that ``evolve_owned`` may change in place: its own struct and nodes dict (the node
    states themselves are frozen, so they are shared)."""
    return msgspec.structs.replace(state, nodes=dict(state.nodes))


def evolve(state: ExecutionState | None, event: Event, at: int) -> ExecutionState:
    """The state after ``event``, which happened at ``at`` (epoch ms). Never mutates ``state``."""
    return evolve_owned(None if state is None else own(state), event, at)


def evolve_owned(state: ExecutionState | None, event: Event, at: int) -> ExecutionState:
    """``evolve``, changing ``state`` in place (the caller owns it, see ``own``): applying many events to a large
    execution then costs what the events change, not a copy of every node per event."""
    if state is None:
        if not isinstance(event, ExecutionStarted):
            raise ValueError(f"an execution's log must begin with execution.started, not {event!r}")
        return ExecutionState(
            execution_id=event.execution_id,
            workflow_id=event.workflow_id,
            workflow_version=event.workflow_version,
            seq=1,
            input=event.input,
            parent_execution_id=event.parent_execution_id,
            parent_node_id=event.parent_node_id,
            depth=event.depth,
            idempotency_key=event.idempotency_key,
            priority=event.priority,
            deadline=event.deadline,
            run_at=event.run_at,
            rerun_of=event.rerun_of,
            status=ExecutionStatus.SCHEDULED if event.run_at is not None else ExecutionStatus.RUNNING,
            started_at=at,
            traceparent=event.traceparent,
        )
    # The node events first: they are most of a log, and each case is one more isinstance check per event.
    match event:
        case NodeQueued(node_id=node_id, attempt=attempt, has_input_override=has_override):
            override = event.input_override if has_override else state.node(node_id).input_override
            if event.fresh_tries:
                return _with_node(
                    state, node_id, status=NodeStatus.QUEUED, attempt=attempt, queued_seq=state.seq + 1,
                    retry_at=None, error=None, finished_at=None, input_override=override,
                    has_input_override=has_override or state.node(node_id).has_input_override,
                    tries_before=attempt - 1,
                )  # fmt: skip
            return _with_node(
                state, node_id, status=NodeStatus.QUEUED, attempt=attempt, queued_seq=state.seq + 1,
                retry_at=None, error=None, finished_at=None, wait_until=None, deferred=None,
                input_override=override, has_input_override=has_override or state.node(node_id).has_input_override,
            )  # fmt: skip
        case NodeStarted(node_id=node_id, attempt=attempt, lease=lease, started_at=started_at):
            started = state.node(node_id).started_at if state.node(node_id).status is NodeStatus.RUNNING else None
            return _with_node(
                state, node_id, status=NodeStatus.RUNNING, attempt=attempt, lease=lease,
                started_at=started or started_at or at, finished_at=None,
            )  # fmt: skip
        case NodeCompleted(node_id=node_id, output=output, next_nodes=next_nodes):
            return _with_node(
                state, node_id, status=NodeStatus.COMPLETED, output=output, next_nodes=next_nodes,
                finished_at=at, error=None, wait_until=None, lease="",
            )  # fmt: skip
        case NodeFailed(node_id=node_id, attempt=attempt, error=error, will_retry=True, retry_at=retry_at):
            return _with_node(state, node_id, status=NodeStatus.RETRYING, error=error, retry_at=retry_at, lease="")
        case NodeFailed(node_id=node_id, attempt=attempt, error=error, continued_on_fail=True):
            output = {
                "error": {"message": error.message, "type": error.type},
                "_metadata": {"continuedOnFail": True, "attempts": attempt},
            }
            return _with_node(
                state, node_id, status=NodeStatus.FAILED, error=error, output=output, finished_at=at, lease=""
            )
        case NodeFailed(node_id=node_id, error=error):
            # The last try failed without continueOnFail; node.dead_lettered follows in the same commit.
            return _with_node(state, node_id, error=error, lease="")
        case NodeSkipped(node_id=node_id):
            return _with_node(state, node_id, status=NodeStatus.SKIPPED, finished_at=at)
        case NodeWaiting(node_id=node_id, reason=reason, until=until) if reason in DEFER_REASONS:
            return _with_node(state, node_id, status=NodeStatus.WAITING, wait_until=until, deferred=reason, lease="")
        case NodeWaiting(node_id=node_id, until=until, child_execution_id=child):
            return _with_node(
                state, node_id, status=NodeStatus.WAITING, wait_until=until, child_execution_id=child,
                started_at=state.node(node_id).started_at or at, attempt=max(1, state.node(node_id).attempt),
            )  # fmt: skip
        case NodeCancelled(node_id=node_id):
            return _with_node(state, node_id, status=NodeStatus.CANCELLED, finished_at=at, lease="")
        case NodeDeadLettered(node_id=node_id, error=error):
            return _with_node(
                state, node_id, status=NodeStatus.DEAD_LETTERED, error=error, finished_at=at, dead_letter_deleted=False
            )
        case DeadLetterDeleted(node_id=node_id):
            return _with_node(state, node_id, dead_letter_deleted=True)
        case ExecutionStarted():
            raise ValueError("execution.started may only begin a log")
        case ExecutionPaused():
            return _with(state, status=ExecutionStatus.PAUSED)
        case ExecutionResumed():
            return _with(state, status=ExecutionStatus.RUNNING, error=None, finished_at=None)
        case ExecutionCancelled():
            return _with(state, status=ExecutionStatus.CANCELLED, finished_at=at)
        case ExecutionCompleted(output=output):
            return _with(state, status=ExecutionStatus.COMPLETED, output=output, finished_at=at)
        case ExecutionFailed(error=error):
            return _with(state, status=ExecutionStatus.FAILED, error=error, finished_at=at)
        case ExecutionDue():
            return _with(state, status=ExecutionStatus.RUNNING, run_at=None, started_at=at)
        case ExecutionDeadlineSet(deadline=deadline):
            return _with(state, deadline=deadline)
        case _:
            assert_never(event)


def fold(envelopes: Iterable[Envelope], state: ExecutionState | None = None) -> ExecutionState | None:
    """Replay a log (or its tail after a snapshot). Never mutates ``state``."""
    state = None if state is None else own(state)
    for envelope in envelopes:
        state = evolve_owned(state, envelope.event, envelope.at)
    return state
