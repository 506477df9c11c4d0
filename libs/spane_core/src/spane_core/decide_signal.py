"""The rules of a ``wait`` node, called from ``decide``: it waits, with no worker and no task, until a signal of
its name comes for the execution (``POST /api/executions/{id}/signals/{name}``), then completes with the signal's
data as its output; a person approving an order, an external system calling back.

With a ``timeoutMs``, a durable timer stands for the deadline: no signal by then fails the node (``SignalTimeout``,
no retries: ``continueOnFail`` lets the children run, otherwise it goes to the dead-letter queue, whose retry
waits again). A signal that comes while the execution is paused completes the node; its children run once it is
resumed. A signal that no node waits for is refused (409), never kept for later.
"""

from __future__ import annotations

from typing import Any, Protocol

from spane_core.commands import Signal
from spane_core.definition import NodeDef, Workflow
from spane_core.errors import StateConflict
from spane_core.events import ErrorInfo, Event, NodeCompleted, NodeStarted, NodeWaiting
from spane_core.ids import NodeId
from spane_core.state import FINISHED_EXECUTION, ExecutionState, ExecutionStatus, NodeStatus

WAIT = "wait"
SIGNAL_REASON = "signal"
SIGNAL_TIMEOUT = "SignalTimeout"


class Decision(Protocol):
    """What these rules need of ``decide``'s working decision."""

    workflow: Workflow

    def emit(self, event: Event) -> None: ...

    def advance(self) -> None: ...

    def fail_node(self, node_id: NodeId, error: ErrorInfo, retryable: bool) -> None: ...


def start_waiting(d: Decision, node: NodeDef, attempt: int, now: int) -> None:
    """``attempt`` of the wait node ``node`` begins (queued already): it waits for its signal, until its timeout."""
    until = None if node.timeout_ms is None else now + node.timeout_ms
    d.emit(NodeStarted(node_id=node.id, attempt=attempt, lease=""))
    d.emit(NodeWaiting(node_id=node.id, reason=SIGNAL_REASON, until=until))


def waits_for_signal(workflow: Workflow, state: ExecutionState, node_id: NodeId) -> bool:
    return state.node(node_id).status is NodeStatus.WAITING and workflow.node(node_id).type == WAIT


def timed_out(d: Decision, node_id: NodeId) -> None:
    """The wait node's timer fell due before its signal came."""
    node = d.workflow.node(node_id)
    message = f"no signal {node.config.get('signal')!r} came within {node.timeout_ms} ms"
    d.fail_node(node_id, ErrorInfo(message=message, type=SIGNAL_TIMEOUT), retryable=False)


def on_signal(d: Decision, state: ExecutionState, command: Signal) -> None:
    if state.status in FINISHED_EXECUTION:
        raise StateConflict(f"cannot signal an execution that is {state.status}")
    waiting = [n for n in d.workflow.graph.order if waits_for_signal(d.workflow, state, n)]
    chosen = [n for n in waiting if _signal_of(d.workflow, n) == command.name]
    if not chosen:
        others = sorted({_signal_of(d.workflow, n) for n in waiting})
        hint = f" (it waits for {', '.join(repr(o) for o in others)})" if others else _none_waits(state)
        raise StateConflict(f"no node of the execution waits for the signal {command.name!r}{hint}")
    for node_id in chosen:
        d.emit(NodeCompleted(node_id=node_id, attempt=state.node(node_id).attempt, output=command.data))
    if state.status is ExecutionStatus.RUNNING:
        d.advance()  # paused: the resume runs the children


def _none_waits(state: ExecutionState) -> str:
    """The hint when no node waits: the children its sub-workflow nodes wait for, where a wait node may be."""
    children = [
        f"its sub-workflow node {node_id!r} runs {run.child_execution_id}"
        for node_id, run in state.nodes.items()
        if run.status is NodeStatus.WAITING and run.child_execution_id is not None
    ]
    if not children:
        return " (none of its nodes waits)"
    return f" (none of its nodes waits; {', '.join(children)}: a wait node there takes signals sent to the child)"


def _signal_of(workflow: Workflow, node_id: NodeId) -> Any:
    return workflow.node(node_id).config.get("signal")
