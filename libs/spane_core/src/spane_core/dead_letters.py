"""What a person does with the dead-letter queue: retry an entry (rerun its node with fresh tries, optionally on
edited input, reviving its execution) or delete it (the execution stays failed). The rules are ``decide``'s
(``decide_dlq``); this module names entries and sends the commands.

An entry's id is ``<executionId>:<nodeId>:<attempt>``: the try of the node that ran out of tries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spane_core.commands import DeleteDeadLetter, RetryDeadLetter
from spane_core.decide_dlq import dead_letter_open
from spane_core.errors import NotFound
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionState, NodeStatus
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.payloads import PayloadStore
from spane_core.usecases import stored_value


@dataclass(frozen=True, slots=True)
class EntryId:
    execution_id: ExecutionId
    node_id: NodeId
    attempt: int

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"


def parse_entry_id(text: str) -> EntryId:
    """``NotFound`` for text that cannot be an entry's id."""
    execution_id, _, rest = text.partition(":")
    node_id, _, attempt = rest.rpartition(":")
    if not execution_id or not node_id or not attempt.isdigit():
        raise NotFound(f"dead letter {text!r} not found")
    return EntryId(ExecutionId(execution_id), NodeId(node_id), int(attempt))


async def _execution(executions: ExecutionStore, entry: EntryId, listed: bool) -> ExecutionState:
    """The entry's execution. ``listed``: the read model knows the entry (it may lag behind the live state, which
    then must show the entry open). A deleted entry is not found."""
    state = await executions.load(entry.execution_id)
    node = None if state is None else state.nodes.get(entry.node_id)
    open_now = state is not None and dead_letter_open(state, entry.node_id, entry.attempt)
    deleted = (
        node is not None and node.status is NodeStatus.DEAD_LETTERED and node.attempt == entry.attempt
        and node.dead_letter_deleted
    )  # fmt: skip
    if state is None or deleted or not (listed or open_now):
        raise NotFound(f"dead letter {str(entry)!r} not found")
    return state


async def retry(
    executions: ExecutionStore, payloads: PayloadStore, entry: EntryId, *, listed: bool, input: Any = None,
    has_input: bool = False,
) -> ExecutionState:  # fmt: skip
    """Rerun the entry's node with fresh tries (on ``input`` when ``has_input``); the execution after it.
    ``StateConflict`` when the entry was retried already or its execution cannot be revived."""
    await _execution(executions, entry, listed)
    value = await stored_value(payloads, input, "input") if has_input else None
    command = RetryDeadLetter(node_id=entry.node_id, input=value, has_input=has_input, attempt=entry.attempt)
    outcome = await executions.apply(Transition(entry.execution_id, [command]))
    assert outcome.state is not None
    return outcome.state


async def delete(executions: ExecutionStore, entry: EntryId, *, listed: bool) -> None:
    """Drop the entry from the queue; ``StateConflict`` when it was retried already."""
    await _execution(executions, entry, listed)
    await executions.apply(Transition(entry.execution_id, [DeleteDeadLetter(entry.node_id, entry.attempt)]))
