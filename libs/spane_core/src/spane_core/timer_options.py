"""An execution's own durable timers: its start at ``runAt`` and its deadline (``timeoutMs``).

They live in the partition's timers zset beside the nodes' timers, under members of their own shape, and are armed
and dropped in the commit of the events that ask for them, like every other effect.
"""

from __future__ import annotations

from spane_core.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionDeadlineSet,
    ExecutionFailed,
    ExecutionStarted,
)
from spane_core.state import ExecutionState


def execution_timer_member(kind: str, execution_id: str, due: int) -> str:
    # "!" begins no execution id, so the member cannot be read as a node's timer.
    return f"!{kind}|{execution_id}|{due}"


def execution_timers(
    before: ExecutionState | None, after: ExecutionState, event: Event, dropped: list[str]
) -> list[tuple[str, int]]:
    """The execution timers (kind, due) that ``event`` arms; the members of those it drops go to ``dropped``."""
    eid = after.execution_id
    match event:
        case ExecutionStarted(run_at=run_at, deadline=deadline):
            armed = [] if run_at is None else [("start", run_at)]
            return armed if deadline is None else [*armed, ("deadline", deadline)]
        case ExecutionDeadlineSet(deadline=deadline):
            if before is not None and before.deadline not in (None, deadline):
                dropped.append(execution_timer_member("deadline", eid, before.deadline))
            return [("deadline", deadline)]
        case ExecutionCompleted() | ExecutionFailed() | ExecutionCancelled():
            # Finished: its timers can only be stale now; drop them rather than leave them to fire for nothing.
            if after.deadline is not None:
                dropped.append(execution_timer_member("deadline", eid, after.deadline))
            run_at = after.run_at if after.run_at is not None else None if before is None else before.run_at
            if run_at is not None:  # never ran (a refused or cancelled scheduled start)
                dropped.append(execution_timer_member("start", eid, run_at))
            return []
        case _:
            return []
