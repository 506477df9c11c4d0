"""Redis keeps only live work: finished tasks leave the tasks stream, projected commits leave the commit stream once
the resume window (``SPANE_EVENTS_RESUME_WINDOW_S``) is past, and the trim mark says how far they went."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from spane_core.keys import PROJECTOR_GROUP, PartitionKeys
from spane_core.settings import Settings
from spane_projector.projector import TRIM_EVERY_S
from spane_projector.service import run_projector
from spane_projector.trim import trim_consumed

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
        settings = Settings(redis_url=redis_url, database_url=database_url, events_resume_window_s=0)
        projecting = asyncio.create_task(run_projector(settings, stop))
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


async def test_the_projector_keeps_what_it_projected_for_the_resume_window(redis_url: str, database_url: str) -> None:
    p = PartitionKeys(0)
    settings = Settings(redis_url=redis_url, database_url=database_url)
    assert settings.events_resume_window_s == 60  # the default
    async with engine(redis_url) as e, running(e):
        wf = await e.register("window", DIAMOND)
        stop = asyncio.Event()
        projecting = asyncio.create_task(run_projector(settings, stop))
        conn = await asyncpg.connect(database_url)
        try:
            for batch in (1, 2):  # the second batch comes after TRIM_EVERY_S: the projector trims after it
                await e.wait_finished(await e.start(wf, {"x": 1}, count=5))
                for _ in range(200):
                    if await _completed(conn) == 5 * batch and await _all_acknowledged(e.redis, p.events):
                        break
                    await asyncio.sleep(0.05)
                if batch == 1:
                    await asyncio.sleep(TRIM_EVERY_S)
            assert await _completed(conn) == 10 and await _all_acknowledged(e.redis, p.events)
        finally:
            stop.set()
            await projecting
            await conn.close()
        # Every commit is still there (10 diamonds, at least 4 commits each), and nothing is marked trimmed.
        assert await e.redis.xlen(p.events) >= 10 * 4
        assert await e.redis.get(p.events_trimmed) is None


async def _all_acknowledged(redis: Redis, stream: str) -> bool:
    (group,) = await redis.xinfo_groups(stream)
    last = await redis.xrevrange(stream, count=1) or []
    return bool(group["pending"] == 0 and last and group["last-delivered-id"] == last[0][0])


async def _completed(conn: asyncpg.Connection) -> int:
    if not await conn.fetchval("SELECT to_regclass('executions') IS NOT NULL"):
        return 0  # the projector has not migrated yet
    count: int = await conn.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'")
    return count


async def test_trimming_keeps_what_a_group_has_not_acknowledged(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        p = PartitionKeys(0)
        await redis.xgroup_create(p.events, PROJECTOR_GROUP, id="0", mkstream=True)
        ids = [await redis.xadd(p.events, {"b": str(i)}) for i in range(10)]
        await redis.xreadgroup(PROJECTOR_GROUP, "c1", {p.events: ">"}, count=6)
        await redis.xack(p.events, PROJECTOR_GROUP, *ids[:3])  # 3..5 delivered but pending, 6..9 not delivered
        assert await trim_consumed(redis, p.events, p.events_trimmed) == 3
        kept = [entry_id for entry_id, _ in await redis.xrange(p.events) or []]
        assert kept == ids[3:]
        assert await redis.get(p.events_trimmed) == ids[2]  # the newest entry removed
    finally:
        await redis.aclose()


async def test_trimming_keeps_the_resume_window_and_never_what_is_unacknowledged(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        p = PartitionKeys(0)
        await redis.xgroup_create(p.events, PROJECTOR_GROUP, id="0", mkstream=True)
        seconds, _ = await redis.time()
        base = seconds * 1000 - 1000  # a second ago
        # Entries of 5 and 3 minutes ago, then of 30 s and 1 s ago, by their ids (stream ids are Redis's clock).
        at = [base - 300_000, base - 299_000, base - 180_000, base - 179_000, base - 30_000, base]
        ids = [await redis.xadd(p.events, {"b": b"x"}, id=f"{ms}-0") for ms in at]
        await redis.xreadgroup(PROJECTOR_GROUP, "c1", {p.events: ">"})
        await redis.xack(p.events, PROJECTOR_GROUP, *ids[:2], *ids[4:])  # 2 and 3 (3 min old) stay pending

        # A window of 60 s: the acknowledged entries older than it go, up to the oldest pending one.
        assert await trim_consumed(redis, p.events, p.events_trimmed, window_ms=60_000) == 2
        assert await _ids(redis, p.events) == ids[2:]
        assert await redis.get(p.events_trimmed) == ids[1]

        # Acknowledged at last, the 3-minute-old entries go; the last 60 s stay although every group has them.
        await redis.xack(p.events, PROJECTOR_GROUP, *ids[2:4])
        assert await trim_consumed(redis, p.events, p.events_trimmed, window_ms=60_000) == 2
        assert await _ids(redis, p.events) == ids[4:]
        assert await redis.get(p.events_trimmed) == ids[3]

        # A window of 10 minutes keeps everything; the mark never moves back.
        await redis.xadd(p.events, {"b": b"x"}, id=f"{base}-1")
        assert await trim_consumed(redis, p.events, p.events_trimmed, window_ms=600_000) == 0
        assert await redis.get(p.events_trimmed) == ids[3]

        # A window of 0 trims right behind the groups, as without one: the last delivered entry stays as the mark.
        await redis.xreadgroup(PROJECTOR_GROUP, "c1", {p.events: ">"})
        await redis.xack(p.events, PROJECTOR_GROUP, f"{base}-1")
        assert await trim_consumed(redis, p.events, p.events_trimmed, window_ms=0) == 2
        assert await _ids(redis, p.events) == [f"{base}-1".encode()]
        assert await redis.get(p.events_trimmed) == ids[5]
    finally:
        await redis.aclose()


async def _ids(redis: Redis, stream: str) -> list[bytes | str | None]:
    return [entry_id for entry_id, _ in await redis.xrange(stream) or []]
