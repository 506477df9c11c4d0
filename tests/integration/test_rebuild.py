"""`spane projector rebuild`: the read models rebuilt from the archive and the log equal the live ones."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_projector import Projector
from spane_projector.rebuild import READ_MODELS, RETIRED, rebuild

from .worker_support import engine, running

pytestmark = pytest.mark.integration


async def flaky(ctx: NodeContext) -> Any:
    if ctx.attempt < 2:
        raise RuntimeError("not yet")
    return {"attempt": ctx.attempt}


async def broken(ctx: NodeContext) -> Any:
    raise RuntimeError("never")


async def projected(pool: asyncpg.Pool) -> int:
    try:
        return int(await pool.fetchval("SELECT count(*) FROM executions"))
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0


async def tables(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM public.{t} ORDER BY 1, 2")] for t in READ_MODELS}


async def test_rebuilt_read_models_equal_the_live_ones(redis_url: str, database_url: str) -> None:
    registry = ExecutorRegistry()
    registry.register("flaky", flaky)
    registry.register("broken", broken)
    fast = {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}}
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        diamond = await e.register("diamond", [
            {"id": "s", "type": "transform", "outputs": ["a", "b"]},
            {"id": "a", "type": "flaky", "retryPolicy": fast, "outputs": ["j"]},
            {"id": "b", "type": "transform", "outputs": ["j"]},
            {"id": "j", "type": "transform"},
        ])  # fmt: skip
        dead = await e.register("dead", [{"id": "x", "type": "broken", "retryPolicy": fast}])
        await e.register("deleted", [{"id": "y", "type": "transform"}])
        await e.workflows.delete("deleted", 1_780_000_000_000)
        ids = await e.start(diamond, {"n": 1}, count=3) + await e.start(dead, {})
        async with running(e, registry):
            await e.wait_finished(ids)

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        stop = asyncio.Event()
        projector = Projector(e.redis, pool, consumer="p", block_ms=50)
        projecting = asyncio.create_task(projector.run(stop))
        try:
            deadline = time.monotonic() + 20
            while await projector.backlog() or await projected(pool) < len(ids):
                assert time.monotonic() < deadline and not projecting.done(), "the projector did not catch up"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await projecting
            await pool.close()
        conn = await asyncpg.connect(database_url)
        try:
            live = await tables(conn)
            counts = await rebuild(e.redis, conn, e.settings.partitions)
            rebuilt = await tables(conn)
            retired = await conn.fetchval(f"SELECT count(*) FROM {RETIRED}.executions")
        finally:
            await conn.close()
    assert live["executions"] and live["dead_letters"] and live["workflows"]
    assert rebuilt == live
    assert counts == {t: len(rows) for t, rows in live.items()} and retired == len(ids)
