"""Executions in memory, with the Redis repository's semantics: for tests of the decision logic without Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spane_core import codec
from spane_core.effects import Task, parse_timer_member
from spane_core.events import Envelope
from spane_core.ids import partition_of
from spane_core.store.commit import Commit, Committed, Failed, Refused, Stored


@dataclass
class InMemoryRepository:
    """Snapshots, logs, queued tasks (by stream entry id), armed timers (member -> due) and acked entries."""

    partitions: int = 1
    # execution id -> (seq, the last snapshot written, the seq it is at): as the commit script keeps them
    snapshots: dict[str, tuple[int, bytes, int]] = field(default_factory=dict)
    logs: dict[str, list[bytes]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)
    acked: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    _entries: int = 0

    def add_task(self, task: Task) -> str:
        """Queue ``task`` as the worker would find it; its entry id."""
        self._entries += 1
        entry = f"{self._entries}-0"
        self.tasks[entry] = task
        return entry

    async def load_stored(self, execution_ids: Sequence[str]) -> list[Stored | None]:
        return [self._stored(eid) for eid in execution_ids]

    def _stored(self, execution_id: str) -> Stored | None:
        if execution_id not in self.snapshots:
            return None
        _, snapshot, at = self.snapshots[execution_id]
        return Stored(snapshot, self.logs[execution_id][at:])

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]:
        return [codec.decode_envelope(item) for item in self.logs.get(execution_id, [])[after_seq:]]

    async def count(self, counter: str, n: int = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + n

    async def tails(self, since: Sequence[tuple[str, int]]) -> list[list[bytes]]:
        return [self.logs.get(eid, [])[seq:] for eid, seq in since]

    async def commit(self, commits: Sequence[Commit]) -> list[Committed | Refused | Failed]:
        return [self._commit(c) for c in commits]

    async def due_timers(self, partition: int, now: int, limit: int) -> list[str]:
        due = sorted((at, member) for member, at in self.timers.items() if at <= now and self._in(member, partition))
        return [member for _, member in due[:limit]]

    async def drop_timers(self, partition: int, members: Sequence[str]) -> None:
        for member in members:
            self.timers.pop(member, None)

    def _in(self, member: str, partition: int) -> bool:
        try:
            execution_id = parse_timer_member(member)[0]
        except ValueError:
            return partition == 0  # an unreadable member: found by the first partition's reader
        return partition_of(execution_id, self.partitions) == partition

    def _commit(self, c: Commit) -> Committed | Refused:
        if c.state is not None:
            seq, snapshot, at = self.snapshots.get(c.execution_id, (0, b"", 0))
            if seq != c.expected_seq:
                if 0 < c.expected_seq < seq:
                    return Refused(seq, tail=self.logs[c.execution_id][c.expected_seq :])
                return Refused(seq, stored=self._stored(c.execution_id))
            if c.snapshot:
                snapshot, at = c.snapshot, c.state.seq
            self.snapshots[c.execution_id] = (c.state.seq, snapshot, at)
            self.logs.setdefault(c.execution_id, []).extend(c.encoded)
            for task in c.tasks:
                self.add_task(task)
            for timer in c.timers:
                self.timers[timer.member] = timer.due
        for member in c.dropped_timers:
            self.timers.pop(member, None)
        for entry in c.acks:
            # Acknowledged is deleted too, as the commit script does: the stream holds only live work.
            if self.tasks.pop(entry, None) is not None:
                self.acked.append(entry)
        return Committed(c.state.seq if c.state is not None else 0)
