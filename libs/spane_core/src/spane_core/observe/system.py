"""Gauges of the shared state, read from Redis and Postgres when scraped: tasks waiting and pending per stream, the
age of the oldest unacknowledged task, projector lag, timers, dead letters and the payload store."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from spane_core.keys import PROJECTOR_GROUP, WORKER_GROUP, WorkflowKeys, all_partitions
from spane_core.observe.metrics import Metrics
from spane_core.store.connection import as_text

log = logging.getLogger("spane.metrics")

DLQ_OPEN = "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL"
PAYLOAD_SIZE = """
    SELECT coalesce(pg_total_relation_size(to_regclass('payloads')), 0) AS bytes,
           coalesce((SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass('payloads')), 0) AS n
"""


class SystemGauges:
    def __init__(self, metrics: Metrics, redis: Redis, db: asyncpg.Pool | None, partitions: int) -> None:
        self.metrics = metrics
        self.redis = redis
        self.db = db
        self.partitions = all_partitions(partitions)

    async def refresh(self) -> None:
        """Read every gauge afresh; what cannot be read keeps its last value (a scrape never fails for it)."""
        try:
            await self._redis_gauges()
        except RedisError as e:
            log.warning("metrics: could not read Redis: %s", e)
        if self.db is not None:
            try:
                await self._postgres_gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("metrics: could not read Postgres: %s", e)

    async def _redis_gauges(self) -> None:
        m = self.metrics
        now = int(time.time() * 1000)
        lag_events, oldest = 0, None
        due = scheduled = 0
        for p in self.partitions:
            for band in p.bands():  # a tasks stream per priority
                waiting, pending, first = await stream_backlog(self.redis, band.tasks, WORKER_GROUP)
                m.tasks_waiting.labels(band.tasks).set(waiting)
                m.tasks_pending.labels(band.tasks).set(pending)
                m.tasks_oldest_pending_age.labels(band.tasks).set(max(0, now - first) / 1000 if first else 0)
            waiting, pending, first = await stream_backlog(self.redis, p.events, PROJECTOR_GROUP)
            lag_events += waiting + pending
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
            due += int(await self.redis.zcount(p.timers, "-inf", now))
            scheduled += int(await self.redis.zcard(p.timers))
        waiting, pending, first = await stream_backlog(self.redis, WorkflowKeys.events, PROJECTOR_GROUP)
        lag_events += waiting + pending
        if first is not None:
            oldest = first if oldest is None else min(oldest, first)
        m.projector_lag_events.set(lag_events)
        m.projector_lag_seconds.set(max(0, now - oldest) / 1000 if oldest is not None else 0)
        m.timers_due.set(due)
        m.timers_scheduled.set(scheduled)

    async def _postgres_gauges(self) -> None:
        assert self.db is not None
        async with self.db.acquire() as conn:
            with contextlib.suppress(asyncpg.UndefinedTableError):  # the schema is not there yet
                self.metrics.dlq_entries.set(int(await conn.fetchval(DLQ_OPEN)))
            row = await conn.fetchrow(PAYLOAD_SIZE)
            if row is not None:
                self.metrics.payload_store_bytes.set(int(row["bytes"]))
                self.metrics.payload_store_entries.set(int(row["n"]))


async def stream_backlog(redis: Redis, stream: str, group: str) -> tuple[int, int, int | None]:
    """Of ``group`` on ``stream``: entries not yet delivered, delivered but unacknowledged, and the time (epoch ms,
    from its id) of the oldest entry that is either; None when there is none."""
    try:
        groups: list[dict[Any, Any]] = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0, 0, None
    info = next((g for g in groups if as_text(g["name"]) == group), None)
    if info is None:  # no consumer has joined yet: every entry waits
        first: list[Any] = await redis.xrange(stream, count=1) or []
        return int(await redis.xlen(stream)), 0, _id_ms(first[0][0]) if first else None
    pending = int(info.get("pending") or 0)
    last = as_text(info.get("last-delivered-id") or "0-0")
    lag_value = info.get("lag")
    oldest: int | None = None
    if pending:
        summary = await redis.xpending(stream, group)
        if summary.get("min"):
            oldest = _id_ms(summary["min"])
    undelivered: list[Any] = await redis.xrange(stream, min=f"({last}", max="+", count=1) or []
    if lag_value is None:  # Redis 6.2 does not count it: count what follows the last delivered entry
        lag = len(await redis.xrange(stream, min=f"({last}", max="+") or []) if undelivered else 0
    else:
        lag = int(lag_value)
    if undelivered:
        oldest_waiting = _id_ms(undelivered[0][0])
        oldest = oldest_waiting if oldest is None else min(oldest, oldest_waiting)
    return lag, pending, oldest


def _id_ms(entry_id: bytes | str) -> int:
    return int(as_text(entry_id).split("-", 1)[0])
