"""A worker under load keeps its tasks: nothing waits for the visibility timeout because a connection pool was full or
Redis dropped its connections for a moment, and no node's side effect runs twice.

The http nodes call a local server that records each request's ``Idempotency-Key`` (``executionId:nodeId:attempt``,
the same for a repeated try), so a node run twice shows as a key seen twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.state import ExecutionStatus

from spane.embedded import free_port

from .worker_support import engine, running

pytestmark = pytest.mark.integration

# Longer than the tests: a task left for a reclaim would never come back within them.
NO_RECLAIM = {"task_visibility_timeout_ms": 600_000}


@contextlib.asynccontextmanager
async def slow_server(delay_s: float) -> AsyncIterator[tuple[str, collections.Counter[str]]]:
    """A local HTTP server answering every request after ``delay_s``; yields its URL and the keys it saw."""
    seen: collections.Counter[str] = collections.Counter()

    async def answer(request: web.Request) -> web.Response:
        seen[request.headers.get("Idempotency-Key", "none")] += 1
        await asyncio.sleep(delay_s)
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def http_diamond(url: str, width: int) -> list[dict[str, Any]]:
    branches = [f"b{i}" for i in range(width)]
    return [
        {"id": "start", "type": "http", "config": {"url": f"{url}/start", "method": "POST"}, "outputs": branches},
        *({"id": b, "type": "http", "config": {"url": f"{url}/{b}"}, "outputs": ["join"]} for b in branches),
        {"id": "join", "type": "http", "config": {"url": f"{url}/join", "method": "POST"}},
    ]


async def test_fifty_http_diamonds_on_a_small_pool_run_each_call_once(redis_url: str) -> None:
    # 400 slow nodes, 200 at a time, through a pool of 18 connections: callers wait for a connection, none fails.
    async with slow_server(0.05) as (url, seen), engine(redis_url, redis_max_connections=4, **NO_RECLAIM) as e:
        wf = await e.register("http-diamond", http_diamond(url, 6))
        ids = await e.start(wf, {"n": 1}, count=50)
        async with running(e):
            states = await e.wait_finished(ids, within=60)
    assert {s.status for s in states} == {ExecutionStatus.COMPLETED}
    assert sum(seen.values()) == 50 * 8
    assert {key: n for key, n in seen.items() if n > 1} == {}  # no call was made twice
    assert len(seen) == 50 * 8 and all(key.endswith(":1") for key in seen)  # each node's first try


async def test_redis_dropping_every_connection_mid_run_loses_and_repeats_nothing(redis_url: str) -> None:
    runs: collections.Counter[str] = collections.Counter()

    async def counted(ctx: NodeContext) -> Any:
        runs[ctx.idempotency_key] += 1
        await asyncio.sleep(0.02)
        return ctx.input

    registry = ExecutorRegistry()
    registry.register("counted", counted)
    nodes = [{"id": "a", "type": "counted", "outputs": [f"b{i}" for i in range(5)]}]
    nodes += [{"id": f"b{i}", "type": "counted", "outputs": ["c"]} for i in range(5)]
    nodes += [{"id": "c", "type": "counted"}]
    async with engine(redis_url, **NO_RECLAIM) as e:
        wf = await e.register("dropped", nodes)
        ids = await e.start(wf, {"n": 1}, count=40)
        async with running(e, registry):
            for _ in range(5):
                await asyncio.sleep(0.05)
                with contextlib.suppress(Exception):  # this client's own connection goes too
                    await e.redis.client_kill_filter(_type="normal", skipme=False)
            states = await e.wait_finished(ids, within=60)
        for state in states:
            await e.replayed(state)
    assert {s.status for s in states} == {ExecutionStatus.COMPLETED}
    assert len(runs) == 40 * 7
    assert {key: n for key, n in runs.items() if n > 1} == {}
