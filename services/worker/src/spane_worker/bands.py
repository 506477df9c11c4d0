"""Reading tasks by priority: each partition has one tasks stream per priority (1-10), read in weighted shares.

Every read asks each stream for its share of the free room (``take.lua``, one round trip); what the shares leave
unused goes to the streams that have more, highest priority first. Shares come from credits that grow with each
priority's weight (twice the one below: ``2 ** (priority - 1)``) and are spent as tasks are taken, so under a backlog
a higher priority takes most of the room and every lower one still gets its turn: nothing starves. A stream found
empty loses its credit, so that an idle priority does not save up a burst. With no new task anywhere, the reader
blocks on all the partition's streams at once.

Most of the time one priority alone has work (most deployments use one): when the last look at every stream found
tasks in one only and emptied the others, the reader reads that stream alone, with a plain XREADGROUP, for up to
``RESCAN_S``; then, or as soon as that stream has nothing new, it looks at every stream again. A task of another
priority waits at most that long to be seen, and the shares need no script while there is nothing to share.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from spane_core.keys import PartitionKeys
from spane_core.store.connection import as_text
from spane_core.store.scripts import LuaScript
from spane_core.store.streams import ConsumerGroup, Entry

log = logging.getLogger("spane.worker")
RESCAN_S = 0.05  # how long the reader may read one priority's stream alone before it looks at every stream again


def weight(priority: int) -> int:
    return int(2 ** (priority - 1))


class Shares:
    """Weighted shares of a count among streams (highest priority first), from credits carried between reads."""

    def __init__(self, priorities: list[int]) -> None:
        self.weights = [weight(p) for p in priorities]
        self.total = sum(self.weights)
        self.credit = [0.0] * len(priorities)

    def split(self, count: int) -> list[int]:
        shares = []
        for i, w in enumerate(self.weights):
            self.credit[i] = min(self.credit[i] + count * w / self.total, float(count))
            shares.append(int(self.credit[i]))
        excess = sum(shares) - count
        for i in range(len(shares)):  # carried credits may ask for more than the room: the highest give way
            if excess <= 0:
                break
            cut = min(excess, shares[i])
            shares[i] -= cut
            excess -= cut
        return shares

    def settle(self, shares: list[int], taken: list[int]) -> None:
        for i, (share, got) in enumerate(zip(shares, taken, strict=True)):
            self.credit[i] = 0.0 if got < share else self.credit[i] - share


class PriorityReader:
    """Reads one partition's priority streams for the group's consumer."""

    def __init__(self, group: ConsumerGroup, p: PartitionKeys, *, rescan_s: float = RESCAN_S) -> None:
        self.group = group
        self.bands = p.bands()
        self.streams = [b.tasks for b in self.bands]
        self.shares = Shares([b.priority for b in self.bands])
        self._take = LuaScript("take")
        self.rescan_s = rescan_s
        self._alone: PartitionKeys | None = None  # the one stream found with work at the last look at all
        self._alone_until = 0.0

    async def read(self, count: int, block_ms: int | None) -> list[tuple[PartitionKeys, list[Entry]]]:
        """Up to ``count`` new tasks, by the stream (partition at a priority) each came from."""
        alone = self._alone
        if alone is not None and time.monotonic() < self._alone_until:
            entries = await self.group.read(alone.tasks, count, None)
            if entries:
                return [(alone, entries)]
        taken = await self._take_shares(count)
        got = [(band, entries) for band, entries in zip(self.bands, taken, strict=True) if entries]
        # Fewer than asked: each stream gave all it had, so the others are empty now (a full read says nothing of
        # the streams whose share it left at zero).
        drained = sum(len(entries) for _, entries in got) < count
        if not got and block_ms:
            by_stream = dict(zip(self.streams, self.bands, strict=True))
            per_stream = max(1, count // len(self.streams))
            woke = await self.group.read_any(self.streams, per_stream, block_ms)
            got = [(by_stream[s], entries) for s, entries in woke]
        self._alone = got[0][0] if drained and len(got) == 1 else None
        self._alone_until = time.monotonic() + self.rescan_s
        return got

    async def _take_shares(self, count: int) -> list[list[Entry]]:
        """``take.lua``; when it finds a stream whose group is gone (a task was added to it since), the group is
        created again and, if nothing else came, the streams are read once more: the task is not left for later."""
        taken, missing = await self._take_once(count)
        if missing:
            log.warning("group %s is gone from %d stream(s); creating it again", self.group.group, len(missing))
            await self.group.ensure_groups([self.streams[i] for i in missing])
            if not any(taken):
                taken, _ = await self._take_once(count)
        return taken

    async def _take_once(self, count: int) -> tuple[list[list[Entry]], list[int]]:
        shares = self.shares.split(count)
        args = [self.group.group, self.group.consumer, count, *shares]
        taken, missing = _parse(await self._take(self.group.redis, self.streams, args), len(self.bands))
        self.shares.settle(shares, [len(entries) for entries in taken])
        return taken, missing


def _parse(reply: Any, n: int) -> tuple[list[list[Entry]], list[int]]:
    """``take.lua``'s answer: the entries of each stream, and the streams whose group is missing."""
    taken: list[list[Entry]] = [[] for _ in range(n)]
    missing: list[int] = []
    i = 0
    while i < len(reply):
        index, count = int(reply[i]) - 1, int(reply[i + 1])
        i += 2
        if count < 0:
            missing.append(index)
            continue
        for item in reply[i : i + count]:
            flat = item[1] or []
            taken[index].append((as_text(item[0]), dict(zip(flat[::2], flat[1::2], strict=True))))
        i += count
    return taken, missing
