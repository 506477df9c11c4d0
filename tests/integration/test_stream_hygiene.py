"""Redis keeps only live work: finished tasks leave the tasks stream, projected commits leave the commit stream."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from spane_core.keys import PROJECTOR_GROUP, PartitionKeys
from spane_core.settings import Settings
from spane_projector.projector import trim_consumed
from spane_projector.service import run_projector

from .worker_support import engine, running

pytestmark = pytest.mark.integration

DIAMOND: list[dict[str, Any]] = [
    {"id": "s", "type": "transform", "outputs": ["a", "b"]},
    {"id": "a", "type": "transform", "outputs": ["j"]},
    {"id": "b", "type": "transform", "outputs": ["j"]},
    {"id": "j", "type": "transform"},
]


async def test_finished_tasks_leave_the_stream_and_projected_commits_are_trimmed(
    redis_url: str, database_url: str
) -> None:
    p = PartitionKeys(0)
    async with engine(redis_url) as e:
        wf = await e.register("hygiene", DIAMOND)
        ids = await e.start(wf, {"x": 1}, count=20)
        async with running(e):
            await e.wait_finished(ids)
        assert await e.redis.xlen(p.tasks) == 0
        commits = await e.redis.xlen(p.events)
        assert commits >= 20 * 4

        stop = asyncio.Event()
        projecting = asyncio.create_task(run_projector(Settings(redis_url=redis_url, database_url=database_url), stop))
        conn = await asyncpg.connect(database_url)
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                done = await _completed(conn)
                if done == 20 and await e.redis.xlen(p.events) <= 1:
                    break
        finally:
            stop.set()
            await projecting
            await conn.close()
        assert done == 20
        # Everything the projector acknowledged is gone; at most the last delivered entry stays as the mark.
        assert await e.redis.xlen(p.events) <= 1


async def _completed(conn: asyncpg.Connection) -> int:
    if not await conn.fetchval("SELECT to_regclass('executions') IS NOT NULL"):
        return 0  # the projector has not migrated yet
    count: int = await conn.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'")
    return count


async def test_trimming_keeps_what_a_group_has_not_acknowledged(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        stream = PartitionKeys(0).events
        await redis.xgroup_create(stream, PROJECTOR_GROUP, id="0", mkstream=True)
        ids = [await redis.xadd(stream, {"b": str(i)}) for i in range(10)]
        await redis.xreadgroup(PROJECTOR_GROUP, "c1", {stream: ">"}, count=6)
        await redis.xack(stream, PROJECTOR_GROUP, *ids[:3])  # 3..5 delivered but pending, 6..9 not delivered
        await trim_consumed(redis, stream)
        kept = [entry_id for entry_id, _ in await redis.xrange(stream) or []]
        assert kept == ids[3:]
    finally:
        await redis.aclose()
