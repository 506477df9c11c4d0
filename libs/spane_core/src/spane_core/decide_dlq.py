"""The rules of the dead-letter queue, called from ``decide``: retrying a dead letter revives its execution, and
deleting one drops it from the queue.

Revival brings back every branch that stopped when the execution failed: while it was failed, nothing new started
(queued tasks were acknowledged as stale, due timers were dropped), so reviving queues again what was queued, runs
the timers that fell due, reruns the dead node with fresh attempts and then lets the graph advance as usual.
"""

from __future__ import annotations

from typing import Any, Protocol

from spane_core.commands import DeleteDeadLetter, RetryDeadLetter
from spane_core.errors import StateConflict
from spane_core.events import DeadLetterDeleted, Event, ExecutionResumed
from spane_core.ids import NodeId
from spane_core.state import ExecutionState, ExecutionStatus, NodeStatus


class Decision(Protocol):
    """What these rules need of ``decide``'s working decision."""

    def emit(self, event: Event) -> None: ...

    def advance(self) -> None: ...

    def run_due(self) -> None: ...

    def queue(self, node_id: NodeId, attempt: int, **override: Any) -> None: ...


def dead_letter_open(state: ExecutionState, node_id: NodeId, attempt: int) -> bool:
    """Whether the dead letter of ``attempt`` of the node is in the queue (neither retried nor deleted)."""
    node = state.node(node_id)
    return node.status is NodeStatus.DEAD_LETTERED and node.attempt == attempt and not node.dead_letter_deleted


def _require_open(state: ExecutionState, node_id: NodeId, attempt: int | None) -> int:
    node = state.node(node_id)
    current = node.attempt if attempt is None else attempt
    if not dead_letter_open(state, node_id, current):
        if node.status is NodeStatus.DEAD_LETTERED and node.dead_letter_deleted:
            raise StateConflict(f"the dead letter of node {node_id!r} was deleted")
        raise StateConflict(f"the dead letter of try {current} of node {node_id!r} was retried already")
    return current


def retry_dead_letter(d: Decision, state: ExecutionState, command: RetryDeadLetter) -> None:
    attempt = _require_open(state, command.node_id, command.attempt)
    if state.status is ExecutionStatus.CANCELLED:
        raise StateConflict("the execution was cancelled; it cannot be revived")
    if state.status is ExecutionStatus.FAILED:
        d.emit(ExecutionResumed())
    if state.status is not ExecutionStatus.PAUSED:
        d.run_due()
    override: dict[str, Any] = (
        {"input_override": command.input, "has_input_override": True} if command.has_input else {}
    )
    d.queue(command.node_id, attempt + 1, fresh_tries=True, **override)
    d.advance()


def delete_dead_letter(d: Decision, state: ExecutionState, command: DeleteDeadLetter) -> None:
    _require_open(state, command.node_id, command.attempt)
    d.emit(DeadLetterDeleted(node_id=command.node_id, attempt=command.attempt))
