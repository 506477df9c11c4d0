"""History retention: executions finished longer than ``SPANE_HISTORY_RETENTION_S`` ago are deleted for good.

Every ``every_s`` the pruner takes the oldest such executions, a batch at a time (as long as batches come full), and
deletes them everywhere: their snapshot and log in Redis (a failed execution's stay there until now, for its dead
letters), then, in one transaction, their read-model rows (the execution, its nodes, its archived log and its dead
letters). Redis goes first: should the transaction fail, the next round finds the rows again and finishes. Several
projectors may run it: one transaction-scoped advisory lock lets one of them prune at a time, and
``FOR UPDATE SKIP LOCKED`` leaves alone an execution whose rows a projector is writing.

The same transaction collects the stored payloads (the claim check) that the pruned executions referenced and that
no other execution references (``payload_refs``, written by the projector), unless a process stored them since the
cutoff: a process may reference a payload it stored lately without storing it again
(``spane_core.store.payloads``), and its reference may not be projected yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

import asyncpg
from redis.asyncio import Redis
from spane_core import keys
from spane_core.ids import first_id_at
from spane_core.observe.metrics import Metrics
from spane_core.readmodel import writes
from spane_core.waiting import wait_event

log = logging.getLogger("spane.projector")

PRUNE_LOCK = 0x5350414E46  # any constant apart from the migrations' (schema.MIGRATION_LOCK)
PRUNE_EVERY_S = 60.0
PRUNE_BATCH = 500


class HistoryPruner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        partitions: int,
        retention_s: int,
        *,
        every_s: float = PRUNE_EVERY_S,
        batch: int = PRUNE_BATCH,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.partitions = partitions
        self.retention_ms = retention_s * 1000
        self.every_s = every_s
        self.batch = batch
        self.clock = clock
        self.metrics = metrics if metrics is not None else Metrics()
        self.pruned = 0  # executions deleted by this process
        self.collected = 0  # and payloads

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every ``every_s`` until ``stop`` is set; a failed round (Postgres or Redis away) waits for the next."""
        while not stop.is_set():
            try:
                while await self.prune_once() == self.batch and not stop.is_set():
                    pass
            except Exception:
                log.exception("pruning the history failed; trying again in %.0f s", self.every_s)
            await wait_event(stop, self.every_s)

    async def prune_once(self) -> int:
        """Delete one batch of the executions finished before the retention's cutoff; how many were deleted."""
        cutoff_ms = int(self.clock() * 1000) - self.retention_ms
        cutoff = dt.datetime.fromtimestamp(cutoff_ms / 1000, tz=dt.UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PRUNE_LOCK):
                return 0  # another projector is at it
            rows = await conn.fetch(writes.SELECT_PRUNABLE, first_id_at(cutoff_ms + 1), cutoff, self.batch)
            doomed = [str(r[0]) for r in rows]
            if not doomed:
                return 0
            await self._forget_in_redis(doomed)
            referenced = [str(r[0]) for r in await conn.fetch(writes.DELETE_PRUNED, doomed)]
            status = await conn.execute(writes.DELETE_UNREFERENCED_PAYLOADS, referenced, cutoff) if referenced else ""
        collected = int(status.rsplit(" ", 1)[-1]) if status else 0
        self.pruned += len(doomed)
        self.collected += collected
        self.metrics.history_pruned.inc(len(doomed))
        self.metrics.payloads_collected.inc(collected)
        log.info(
            "pruned %d execution(s) finished before %s, and %d stored payload(s) only they referenced",
            len(doomed), cutoff.isoformat(), collected,
        )  # fmt: skip
        return len(doomed)

    async def _forget_in_redis(self, execution_ids: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for execution_id in execution_ids:
            execution_keys = keys.for_execution(execution_id, self.partitions)
            pipe.delete(execution_keys.snapshot(execution_id), execution_keys.log(execution_id))
        await pipe.execute()
