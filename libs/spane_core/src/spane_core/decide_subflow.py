"""The rules of sub-workflow nodes, called from ``decide``.

A sub-workflow node runs in the engine, not in a worker: when it is queued it starts at once and waits, naming the
child execution it starts (``node.waiting`` with ``childExecutionId``). The child itself is started by whoever
carries out the effects of that commit (``spane_core.subworkflows``); its id is derived from the parent, the node
and the attempt, so starting it twice starts it once. The child's end comes back as ``ChildFinished``.
"""

from __future__ import annotations

from typing import Protocol

from spane_core.commands import ChildFinished, Context
from spane_core.definition import Workflow
from spane_core.events import ErrorInfo, Event, NodeCompleted, NodeStarted, NodeWaiting
from spane_core.ids import ExecutionId, NodeId, derived_execution_id
from spane_core.state import ExecutionState, NodeStatus

SUB_WORKFLOW = "sub-workflow"
WAITING_REASON = "sub-workflow"
# The error type of a chain of sub-workflows nested deeper than SPANE_MAX_DEPTH: it fails each node up the chain at
# once (retrying cannot make the chain shorter, and retries at every level would multiply).
MAX_DEPTH_EXCEEDED = "MaxDepthExceeded"


class Decision(Protocol):
    """What these rules need of ``decide``'s working decision."""

    workflow: Workflow
    ctx: Context

    @property
    def s(self) -> ExecutionState: ...

    def emit(self, event: Event) -> None: ...

    def advance(self) -> None: ...

    def fail_node(self, node_id: NodeId, error: ErrorInfo, retryable: bool) -> None: ...


def child_execution_id(parent: ExecutionId, node_id: NodeId, attempt: int, now: int) -> ExecutionId:
    """The child that ``attempt`` of the node starts: derived, so that a crash between the parent's commit and the
    child's start, or two processes carrying out the same effect, start it exactly once."""
    return derived_execution_id(now, f"{parent}/{node_id}/{attempt}")


def start_child(d: Decision, node_id: NodeId, attempt: int) -> None:
    """The queued ``attempt`` of a sub-workflow node starts and waits for its child."""
    child = child_execution_id(d.s.execution_id, node_id, attempt, d.ctx.now)
    d.emit(NodeStarted(node_id=node_id, attempt=attempt, lease=""))
    d.emit(NodeWaiting(node_id=node_id, reason=WAITING_REASON, child_execution_id=child))


def child_finished(d: Decision, state: ExecutionState, command: ChildFinished) -> None:
    """The child of the node's current try ended: the node completes with its (mapped) output, or its try fails
    (the node's retry policy and continueOnFail apply). A report about an earlier try's child changes nothing."""
    node = state.node(command.node_id)
    if node.status is not NodeStatus.WAITING or node.child_execution_id != command.child_execution_id:
        return
    if command.completed:
        d.emit(NodeCompleted(node_id=command.node_id, attempt=node.attempt, output=command.output))
        d.advance()
        return
    error = command.error or ErrorInfo(message=f"sub-workflow execution {command.child_execution_id} failed")
    d.fail_node(command.node_id, error, command.retryable)
