"""Reclaiming: tasks idle longer than the visibility timeout (their worker died) are taken over with XAUTOCLAIM and
run here, except those whose workers went silent too often.

Each reclaim is one more delivery: a task that kills every worker that takes it (a crash, the OOM killer) must end
in the retry policy and the dead-letter queue, not in an endless reclaim loop."""

from __future__ import annotations

import asyncio
import logging

from spane_core import codec
from spane_core.commands import WorkerLost
from spane_core.effects import Task
from spane_core.keys import PartitionKeys
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.streams import ConsumerGroup, Entry

from spane_worker.held import HeldTasks
from spane_worker.runner import Runner
from spane_worker.task_state import keep_pending
from spane_worker.upkeep import every

log = logging.getLogger("spane.worker")
SWEEP_CALLS = 100  # XAUTOCLAIM calls per partition and period at most; the next period goes on


class Reclaimer:
    """Every half visibility timeout, takes over as many silent tasks as there is room for and runs them."""

    def __init__(
        self,
        group: ConsumerGroup,
        held: HeldTasks,
        runner: Runner,
        store: ExecutionStore,
        partitions: list[PartitionKeys],
        *,
        visibility_ms: int,
        batch: int,
        max_deliveries: int,
    ) -> None:
        self.group = group
        self.held = held
        self.runner = runner
        self.store = store
        self.partitions = partitions
        self.visibility_ms = visibility_ms
        self.batch = batch
        self.max_deliveries = max_deliveries

    async def sweep(self) -> None:
        """Take over tasks whose worker has been silent longer than the visibility timeout."""
        for p in self.partitions:
            start = "0-0"
            for _ in range(SWEEP_CALLS):
                free = self.held.free
                if free <= 0:
                    return
                start, claimed = await self.group.reclaim(p.tasks, self.visibility_ms, min(self.batch, free), start)
                entries = await settle_lost(self.store, self.group, p, claimed, self.max_deliveries)
                if entries:
                    log.info("reclaimed %d task(s) from %s", len(entries), p.tasks)
                    await self.runner.accept(p, entries, reclaimed=True)
                if start == "0-0":
                    break

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.visibility_ms / 2000, self.sweep, stop)


async def settle_lost(
    store: ExecutionStore, group: ConsumerGroup, p: PartitionKeys, entries: list[Entry], max_deliveries: int
) -> list[Entry]:
    """Settle the reclaimed tasks whose workers went silent too often (each reclaim is one more delivery):
    their node's try fails with WorkerLost, and the task is acknowledged. Returns the others."""
    if not entries:
        return entries
    deliveries = await group.deliveries(p.tasks, [entry_id for entry_id, _ in entries])
    keep: list[Entry] = []
    lost: list[tuple[str, Task]] = []
    for (entry_id, fields), delivered in zip(entries, deliveries, strict=True):
        if delivered > max_deliveries and b"t" in fields:
            lost.append((entry_id, codec.decode_task(fields[b"t"])))
        else:
            keep.append((entry_id, fields))
    if not lost:
        return keep
    log.warning("%d task(s) of %s lost their workers too often; their tries fail", len(lost), p.tasks)
    transitions = [
        Transition(task.execution_id, [WorkerLost(task.node_id, task.queued_seq, max_deliveries)],
                   ack_if_recorded=[lost_id])
        for lost_id, task in lost
    ]  # fmt: skip
    settled = []
    for (lost_id, task), outcome in zip(lost, await store.transact(transitions), strict=True):
        if outcome.error is not None:
            log.warning("could not settle a lost task of %s: %s", outcome.execution_id, outcome.error)
        elif not outcome.events and not keep_pending(outcome.state, task):
            settled.append(Transition(task.execution_id, [], ack=[lost_id]))  # stale: nothing to fail
    if settled:
        await store.transact(settled)
    return keep
