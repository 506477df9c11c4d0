"""The rules of a deferred node: a shared limit holds back its task without spending one of its attempts.

``Defer`` turns the task of the node's latest ``node.queued`` into a ``node.waiting`` with the limit as its reason
and a durable timer at ``until``; the timer (or a resume after it fell due) queues the same attempt again.
"""

from __future__ import annotations

from spane_core.commands import Defer
from spane_core.events import Event, NodeQueued, NodeWaiting
from spane_core.ids import NodeId
from spane_core.state import ACTIVE, ExecutionState, ExecutionStatus, NodeState, NodeStatus


def on_defer(state: ExecutionState, command: Defer) -> list[Event]:
    """Defer the node if ``command`` comes from the task of its latest queueing and the execution runs."""
    node = state.node(command.node_id)
    if state.status is not ExecutionStatus.RUNNING or node.queued_seq != command.queued_seq:
        return []  # paused (resume queues it again), finished, or a stale task
    if node.status not in ACTIVE:
        return []
    return [NodeWaiting(node_id=command.node_id, reason=command.reason, until=command.until)]


def is_deferred(node: NodeState) -> bool:
    return node.status is NodeStatus.WAITING and node.deferred is not None


def requeue(node_id: NodeId, node: NodeState) -> NodeQueued:
    """The same attempt again: a deferral spends none."""
    return NodeQueued(node_id=node_id, attempt=node.attempt)
