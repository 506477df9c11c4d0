"""What one transition writes, and the repository that writes it: the seam between the command handler and storage.

A repository commits a batch of transitions in one step (one round trip for Redis), each checked against the
version its decision was made on: a refused commit hands back the current snapshot so that the handler decides
again without another read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from spane_core.effects import Task, Timer
from spane_core.events import Envelope
from spane_core.state import ExecutionState


@dataclass(frozen=True, slots=True)
class Commit:
    """One execution's transition: events with the snapshot they lead to, and their effects.

    With no events, only the acks and dropped timers apply, and no version is checked.
    """

    execution_id: str
    expected_seq: int  # the snapshot's seq the decision was made on (0: no snapshot)
    state: ExecutionState | None = None  # after the transition; None when there are no events
    snapshot: bytes = b""  # ``state`` encoded
    envelopes: Sequence[Envelope] = ()
    encoded: Sequence[bytes] = ()  # ``envelopes`` encoded, in order
    tasks: Sequence[Task] = ()
    timers: Sequence[Timer] = ()
    dropped_timers: Sequence[str] = ()
    acks: Sequence[str] = ()  # task stream entries to acknowledge


@dataclass(frozen=True, slots=True)
class Committed:
    seq: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A version conflict: nothing was written; the execution's current snapshot, encoded (None: none)."""

    seq: int
    snapshot: bytes | None = None


class Repository(Protocol):
    """Where executions' snapshots, logs and effects live."""

    partitions: int

    async def load_encoded(self, execution_ids: Sequence[str]) -> list[bytes | None]:
        """Each execution's encoded snapshot, in one round trip."""
        ...

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]: ...

    async def commit(self, commits: Sequence[Commit]) -> list[Committed | Refused]:
        """Write every commit, each atomically and version-checked, in one round trip."""
        ...

    async def due_timers(self, partition: int, now: int, limit: int) -> list[str]:
        """Up to ``limit`` members of partition ``partition``'s timers that are due at ``now``, earliest first."""
        ...

    async def drop_timers(self, partition: int, members: Sequence[str]) -> None:
        """Forget timers outside of any commit (members no execution can own, such as unreadable ones)."""
        ...
