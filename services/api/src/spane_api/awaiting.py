"""Waiting, in a request, for an execution to finish: ``POST /api/workflows/{id}/execute`` with ``waitMs`` answers
with the finished execution when it ends in time, as a function call would (``202`` otherwise, as without it).

The wait follows the execution's events through the process's ``EventHub`` (no polling): it subscribes first, then
reads the state once, so that an end committed before the subscription is in that state and one after it comes as
an event. A look at the state every second covers a reader that lost its connection meanwhile. A server that
begins to stop (``EventHub.stopping``) lets the waits go within that second: the callers get their 202.
"""

from __future__ import annotations

import asyncio

from spane_core.events import ExecutionCancelled, ExecutionCompleted, ExecutionFailed
from spane_core.ids import ExecutionId
from spane_core.state import FINISHED_EXECUTION, ExecutionState
from spane_core.store.executions import ExecutionStore, now_ms

from spane_api.live import EventHub, Subscription

_LOOK_AGAIN_S = 1.0
_ENDS = (ExecutionCompleted, ExecutionFailed, ExecutionCancelled)


async def finished_within(
    hub: EventHub, executions: ExecutionStore, execution_id: ExecutionId, wait_ms: int
) -> ExecutionState | None:
    """The execution's final state if it finishes within ``wait_ms``; None if it does not (or Redis no longer
    holds it, or the server stops meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    async with hub.subscribe(Subscription(execution_id=execution_id)) as subscription:
        while True:
            state = await executions.load(execution_id)
            if state is None or state.status in FINISHED_EXECUTION:
                return state
            if state.run_at is not None and state.run_at > now_ms() + (deadline - loop.time()) * 1000:
                return None  # scheduled to start after the wait is over: no use holding the call
            while (remaining := deadline - loop.time()) > 0 and not hub.stopping.is_set():
                items = await subscription.take(min(remaining, _LOOK_AGAIN_S))
                if subscription.dropped or not items or any(isinstance(e.event, _ENDS) for _, e in items):
                    subscription.dropped = False
                    break  # it ended, or a second passed, or too much came at once: look at the state
            else:
                return None
