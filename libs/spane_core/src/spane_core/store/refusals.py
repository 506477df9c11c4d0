"""Transitions that the store refuses for good (a script error, a value Redis does not take): tried a few times,
then the execution is failed with an internal error naming the cause, rather than its task being reclaimed and
refused forever while the execution stays ``running`` with nothing said.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from spane_core.commands import Abort, Start
from spane_core.events import ErrorInfo
from spane_core.store.commit import Failed

if TYPE_CHECKING:
    from spane_core.store.executions import Transition

log = logging.getLogger("spane.store")

STORE_TRIES = 3  # tries of a refused transition before its execution fails
FAILED_COUNTER = "executions_failed_internal"  # the shared counter that /metrics reports


class Refusals:
    """The refusals met by one ``transact`` call, by the index of their transition."""

    def __init__(self) -> None:
        self.tries: dict[int, int] = {}
        self.aborting: set[int] = set()

    def refused(self, i: int, transition: Transition, failed: Failed) -> Transition | None:
        """What to try next for a refused transition: itself again, then its execution's failure; None: give up
        (the failure itself was refused; the work stays where it is, to be tried again later)."""
        eid = transition.execution_id
        tries = self.tries[i] = self.tries.get(i, 0) + 1
        if i in self.aborting:
            log.error("execution %s: the store refused even to record its failure: %s", eid, failed.cause)
            return None
        if tries < STORE_TRIES:
            log.warning("execution %s: the store refused its transition (try %d of %d): %s", eid, tries,
                        STORE_TRIES, failed.cause)  # fmt: skip
            return transition
        self.aborting.add(i)
        message = f"internal error: the store refused to record a transition {tries} times: {failed.cause}"
        log.error("execution %s fails: %s", eid, message)
        start = next((c for c in transition.commands if isinstance(c, Start)), None)
        return dataclasses.replace(
            transition,
            commands=[Abort(ErrorInfo(message=message, type="InternalError"), start)],
            # The tasks whose results could not be recorded are done: their execution has failed.
            ack=[*transition.ack, *(entry for entry in transition.ack_if_recorded if entry is not None)],
            ack_if_recorded=(),
        )
