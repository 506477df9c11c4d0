"""A poison entry never stalls projection: it is parked with its error while the entries after it are projected,
counted in the metrics, and re-driven on request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from spane_core import codec, keys
from spane_core.events import Envelope, ExecutionStarted, NodeQueued
from spane_core.ids import ExecutionId, NodeId, WorkflowId, new_execution_id
from spane_core.observe.metrics import Metrics
from spane_core.readmodel import migrate
from spane_projector import Projector
from spane_projector.observer import Observer
from spane_projector.poison import parked, poison_stream, redrive

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


def started(execution_id: ExecutionId) -> list[Envelope]:
    wf = WorkflowId("wf")
    return [
        Envelope(execution_id=execution_id, workflow_id=wf, seq=1, at=1_780_000_000_000,
                 event=ExecutionStarted(execution_id=execution_id, workflow_id=wf, workflow_version=1)),
        Envelope(execution_id=execution_id, workflow_id=wf, seq=2, at=1_780_000_000_000,
                 event=NodeQueued(node_id=NodeId("a"), attempt=1)),
    ]  # fmt: skip


async def test_a_poison_entry_is_parked_while_the_next_are_projected(redis: aioredis.Redis, db: asyncpg.Pool) -> None:
    stream = keys.for_execution("x", 1).events
    await redis.xadd(stream, {"b": b"\xc1 not msgpack"})  # undecodable
    good = ExecutionId(new_execution_id())
    await redis.xadd(stream, {"b": codec.encode(started(good))})
    metrics = Metrics()
    projector = Projector(redis, db, consumer="p", observer=Observer(metrics), block_ms=50)
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    try:
        deadline = time.monotonic() + 20
        while await db.fetchval("SELECT status FROM executions WHERE execution_id = $1", good) is None:
            assert time.monotonic() < deadline and not running.done(), "the entry after the poison one waits"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    (entry,) = await parked(redis, 1)
    assert entry.stream == stream and entry.body == b"\xc1 not msgpack"
    assert "DecodeError" in entry.error or "ValidationError" in entry.error, entry.error
    assert (await redis.xpending(stream, keys.PROJECTOR_GROUP))["pending"] == 0  # acknowledged
    assert b"spane_projector_poison_entries_total 1.0" in metrics.render()

    (moved,) = await redrive(redis, 1)
    assert moved.id == entry.id and await redis.xlen(poison_stream(stream)) == 0
    last: list[Any] = await redis.xrevrange(stream, count=1) or []
    assert last[0][1][b"b"] == b"\xc1 not msgpack"  # back in its stream, for a fixed projector to apply


def test_the_poison_command_says_when_nothing_is_parked(redis_url: str) -> None:
    env = {**os.environ, "SPANE_REDIS_URL": redis_url, "SPANE_PARTITIONS": "1"}
    for args in ([], ["--redrive-all"]):
        done = subprocess.run(
            [sys.executable, "-m", "spane", "projector", "poison", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "no parked entries", args  # not a silence that looks like a hang or a failure
