"""A bulk command's skipped reasons say why without internals (a fake store: no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from spane_core.bulk import command_many
from spane_core.errors import InternalError, StateConflict
from spane_core.ids import ExecutionId
from spane_core.store.executions import ExecutionStore, Outcome, Transition


class FailingStore:
    async def transact(self, transitions: Sequence[Transition]) -> list[Outcome]:
        return [
            Outcome(ExecutionId("e1"), error=StateConflict("execution 'e1' is completed: it cannot be cancelled")),
            Outcome(ExecutionId("e2"), error=InternalError("deciding on execution 'e2' failed: KeyError('x-detail')")),
            Outcome(ExecutionId("e3")),
        ]


async def test_an_internal_error_is_skipped_without_its_message() -> None:
    store = cast(ExecutionStore, cast(Any, FailingStore()))
    outcome = await command_many(store, ["e1", "e2", "e3"], "cancel")
    reasons = {s.execution_id: s.reason for s in outcome.skipped}
    assert reasons["e1"] == "execution 'e1' is completed: it cannot be cancelled"
    assert "x-detail" not in reasons["e2"] and "internal error" in reasons["e2"]
    assert outcome.accepted == ["e3"]
