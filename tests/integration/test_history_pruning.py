"""History retention: executions finished longer ago than the retention are deleted everywhere, a batch at a time;
the others, and whatever is still running, are kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from spane_core import keys
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_projector import Projector
from spane_projector.prune import HistoryPruner

from .worker_support import engine, running

pytestmark = pytest.mark.integration

DAY_S = 24 * 3600
FAST = {"maxAttempts": 1}


async def broken(ctx: NodeContext) -> Any:
    raise RuntimeError("never")


async def rows(pool: asyncpg.Pool, table: str) -> set[str]:
    return {r[0] for r in await pool.fetch(f"SELECT DISTINCT execution_id FROM {table}")}


async def projected(pool: asyncpg.Pool) -> int:
    try:
        return len(await rows(pool, "executions"))
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0


async def project(redis: Any, pool: asyncpg.Pool, count: int) -> None:
    stop = asyncio.Event()
    projector = Projector(redis, pool, consumer="p", block_ms=50)
    projecting = asyncio.create_task(projector.run(stop))
    try:
        deadline = time.monotonic() + 20
        while await projector.backlog() or await projected(pool) < count:
            assert time.monotonic() < deadline and not projecting.done(), "the projector did not catch up"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await projecting


async def test_finished_executions_past_the_retention_are_deleted_everywhere(redis_url: str, database_url: str) -> None:
    registry = ExecutorRegistry()
    registry.register("broken", broken)
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        done = await e.register("done", [
            {"id": "a", "type": "transform", "outputs": ["b"]}, {"id": "b", "type": "transform"},
        ])  # fmt: skip
        dead = await e.register("dead", [{"id": "x", "type": "broken", "config": {"retryPolicy": FAST}}])
        slow = await e.register("slow", [{"id": "wait", "type": "delay", "config": {"seconds": 3600}}])
        finished = await e.start(done, {"n": 1}, count=3) + await e.start(dead, {})
        (waiting,) = await e.start(slow, {})
        async with running(e, registry):
            await e.wait_finished(finished)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        try:
            await project(e.redis, pool, len(finished) + 1)
            assert await rows(pool, "dead_letters") == set(finished[-1:])

            now = time.time()
            kept = HistoryPruner(pool, e.redis, e.settings.partitions, DAY_S, clock=lambda: now)
            assert await kept.prune_once() == 0  # finished seconds ago: within the retention

            later = HistoryPruner(pool, e.redis, e.settings.partitions, DAY_S, batch=3, clock=lambda: now + DAY_S + 5)
            assert await later.prune_once() == 3  # a batch at a time, oldest first
            assert await later.prune_once() == 1
            assert await later.prune_once() == 0

            for table in ("executions", "node_runs", "event_runs", "dead_letters"):
                assert await rows(pool, table) & set(finished) == set(), table
            assert await rows(pool, "executions") == {waiting}  # still running: nothing to prune
            for eid in finished:
                k = keys.for_execution(eid, e.settings.partitions)
                assert not await e.redis.exists(k.snapshot(eid), k.log(eid))  # a failed one's too
            k = keys.for_execution(waiting, e.settings.partitions)
            assert await e.redis.exists(k.snapshot(waiting))
        finally:
            await pool.close()
