"""The worker's periodic jobs besides reclaiming: the heartbeat of the tasks it holds and the housekeeping of its
consumer group, and the loop that runs such a job every so often."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from spane_core.keys import PartitionKeys
from spane_core.store.streams import ConsumerGroup
from spane_core.waiting import wait_event

from spane_worker.held import HeldTasks

log = logging.getLogger("spane.worker")
FORGET_EVERY_S = 60.0  # how often the group's consumers of workers gone for good are deleted


class Heartbeat:
    """Resets the idle time of every task held here (XCLAIM JUSTID), so that a long-running node is not taken for
    one whose worker died and reclaimed; beats a few times per visibility timeout."""

    def __init__(self, group: ConsumerGroup, held: HeldTasks, partitions: list[PartitionKeys], period_s: float) -> None:
        self.group = group
        self.held = held
        self.partitions = partitions
        self.period_s = period_s

    async def beat(self) -> None:
        by_stream = self.held.entry_ids()
        for p in self.partitions:  # every partition at every priority
            await self.group.touch(p.tasks, by_stream.get(p, []))

    async def run(self) -> None:
        """Beat until cancelled: the tasks still running during the shutdown drain are kept fresh too."""
        await every(self.period_s, self.beat, None)


class Housekeeping:
    """Deletes the consumers that workers gone for good left in the group (see ``ConsumerGroup.forget_gone``)."""

    def __init__(self, group: ConsumerGroup, partitions: list[PartitionKeys], period_s: float = FORGET_EVERY_S) -> None:
        self.group = group
        self.partitions = partitions
        self.period_s = period_s

    async def sweep(self) -> None:
        for p in self.partitions:
            await self.group.forget_gone(p.tasks)

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.period_s, self.sweep, stop)


async def every(period_s: float, job: Callable[[], Awaitable[None]], stop: asyncio.Event | None) -> None:
    """Run ``job`` every ``period_s`` until ``stop`` is set (None: until cancelled); a failing run is logged and
    the next one goes on."""
    forever = asyncio.Event()
    while True:
        if await wait_event(stop or forever, period_s):
            return
        try:
            await job()
        except Exception:
            log.exception("worker %s failed", getattr(job, "__name__", "job"))
