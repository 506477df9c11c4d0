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
    # ``state`` encoded; empty when the stored snapshot stays as it is (the log after it holds what follows): a
    # large execution's snapshot is rewritten every so many events, not on every commit (see ``snapshot_every``).
    snapshot: bytes = b""
    envelopes: Sequence[Envelope] = ()
    encoded: Sequence[bytes] = ()  # ``envelopes`` encoded, in order
    tasks: Sequence[Task] = ()
    timers: Sequence[Timer] = ()
    dropped_timers: Sequence[str] = ()
    acks: Sequence[str] = ()  # task stream entries to acknowledge
    priority: int = 5  # the execution's: its tasks are written to and acknowledged on that priority's stream


@dataclass(frozen=True, slots=True)
class Committed:
    seq: int


@dataclass(frozen=True, slots=True)
class Stored:
    """An execution as stored: its last snapshot and the log's envelopes after it (all encoded), to fold on."""

    snapshot: bytes
    tail: Sequence[bytes] = ()

    @property
    def size(self) -> int:
        return len(self.snapshot) + sum(len(e) for e in self.tail)


@dataclass(frozen=True, slots=True)
class Refused:
    """A version conflict: nothing was written. What the caller lacks to decide again: when the commit expected a
    state (``expected_seq`` > 0) that is still in the log, ``tail``: the log's envelopes after it; else ``stored``,
    the whole stored execution (None with ``seq`` 0: there is none)."""

    seq: int
    stored: Stored | None = None
    tail: Sequence[bytes] | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The store refused the commit for a reason that does not pass (a script error, a value Redis refuses):
    nothing was written, and trying the same commit again would fail the same way. ``cause``: what it said."""

    cause: str


class Repository(Protocol):
    """Where executions' snapshots, logs and effects live."""

    partitions: int

    async def load_stored(self, execution_ids: Sequence[str]) -> list[Stored | None]:
        """Each execution as stored (None: unknown), in one round trip."""
        ...

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]: ...

    async def tails(self, since: Sequence[tuple[str, int]]) -> list[list[bytes]]:
        """For each (execution, seq): its log's envelopes after that seq, encoded, in one round trip."""
        ...

    async def commit(self, commits: Sequence[Commit]) -> list[Committed | Refused | Failed]:
        """Write every commit, each atomically and version-checked, in one round trip."""
        ...

    async def due_timers(self, partition: int, now: int, limit: int) -> list[str]:
        """Up to ``limit`` members of partition ``partition``'s timers that are due at ``now``, earliest first."""
        ...

    async def drop_timers(self, partition: int, members: Sequence[str]) -> None:
        """Forget timers outside of any commit (members no execution can own, such as unreadable ones)."""
        ...

    async def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to a counter shared by every process (what ``/metrics`` reports of the whole system)."""
        ...
