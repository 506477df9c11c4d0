"""Reclaimed tasks whose workers went silent too often (each reclaim is one more delivery): a task that kills
every worker that takes it (a crash, the OOM killer) must end in the retry policy and the dead-letter queue, not
in an endless reclaim loop."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from spane_core import codec
from spane_core.commands import WorkerLost
from spane_core.effects import Task
from spane_core.keys import WORKER_GROUP, PartitionKeys
from spane_core.store.executions import ExecutionStore, Transition

from spane_worker.task_state import keep_pending

log = logging.getLogger("spane.worker")

Entry = tuple[bytes, dict[bytes, bytes] | None]


async def settle_lost(
    store: ExecutionStore, redis: Redis, p: PartitionKeys, entries: list[Entry], max_deliveries: int
) -> list[Entry]:
    """Settle the reclaimed tasks whose workers went silent too often (each reclaim is one more delivery):
    their node's try fails with WorkerLost, and the task is acknowledged. Returns the others."""
    if not entries:
        return entries
    pipe = redis.pipeline(transaction=False)
    for entry_id, _ in entries:
        pipe.xpending_range(p.tasks, WORKER_GROUP, min=entry_id, max=entry_id, count=1)
    pending = await pipe.execute()
    keep: list[Entry] = []
    lost: list[tuple[str, Task]] = []
    for (entry_id, fields), info in zip(entries, pending, strict=True):
        deliveries = int(info[0]["times_delivered"]) if info else 0
        if deliveries > max_deliveries and fields and b"t" in fields:
            lost.append((_text(entry_id), codec.decode_task(fields[b"t"])))
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
