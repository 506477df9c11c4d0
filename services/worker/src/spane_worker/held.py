"""The tasks this worker holds, read and not yet settled, and the room they leave under its concurrency limit.

Readers take only as many tasks as there is room for, the heartbeat keeps every held one fresh in its group, and a
reclaim skips the ones held here already; the committer and the runner let a task go once it is settled.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from spane_core.keys import PartitionKeys
from spane_core.waiting import wait_event

from spane_worker.committer import Held


class HeldTasks:
    """Held tasks by (partition, priority, stream entry id), at most ``concurrency`` of them."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._held: dict[tuple[int, int, str], Held] = {}
        self._room = asyncio.Event()
        self.on_release: Callable[[Held], None] | None = None  # told of every task let go (the limits gate)

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: tuple[int, int, str]) -> bool:
        return key in self._held

    @property
    def free(self) -> int:
        """How many more tasks may be taken now."""
        return self.concurrency - len(self._held)

    def hold(self, held: Held) -> None:
        self._held[held.key] = held

    def release(self, held: Held) -> None:
        """Let ``held`` go (settled, or left pending in its stream to be reclaimed)."""
        self._held.pop(held.key, None)
        if self.on_release is not None:
            self.on_release(held)
        if len(self._held) < self.concurrency:
            self._room.set()

    def entry_ids(self) -> dict[PartitionKeys, list[str]]:
        """The stream entry ids of the held tasks, by the partition and priority (the stream) they came from."""
        by_stream: dict[PartitionKeys, list[str]] = defaultdict(list)
        for held in list(self._held.values()):
            by_stream[held.partition].append(held.entry_id)
        return by_stream

    async def wait_for_room(self, stop: asyncio.Event) -> bool:
        """Wait until a task may be taken; False when ``stop`` is set first."""
        while len(self._held) >= self.concurrency:
            if stop.is_set():
                return False
            self._room.clear()
            await wait_event(self._room, 0.5)
        return True
