"""Workers under shared limits: a concurrency limit per node type holds across two workers, and the nodes it holds
back wait (``node.waiting`` with the reason) without spending an attempt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from spane_core.events import NodeWaiting
from spane_core.ids import NodeId
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.state import ExecutionStatus

from .worker_support import engine, running

pytestmark = pytest.mark.integration


async def test_a_concurrency_limit_holds_across_two_workers_and_defers_without_spending_attempts(
    redis_url: str,
) -> None:
    now_running = 0
    most = 0

    async def slow(ctx: NodeContext) -> Any:
        nonlocal now_running, most
        now_running += 1
        most = max(most, now_running)
        await asyncio.sleep(0.05)
        now_running -= 1
        return ctx.input

    registry = ExecutorRegistry()
    registry.register("slow", slow)
    limits = {"concurrency_limits": {"slow": 2}, "limit_poll_ms": 100, "scheduler_interval_ms": 10}
    async with (
        engine(redis_url, consumer_name="w1", **limits) as one,
        engine(redis_url, consumer_name="w2", **limits) as two,
    ):
        wf = await one.register("limited", [{"id": "s", "type": "slow"}])
        ids = await one.start(wf, {"x": 1}, count=12)
        async with running(one, registry), running(two, registry, scheduler=False):
            states = await one.wait_finished(ids, within=30)
        assert all(s.status is ExecutionStatus.COMPLETED for s in states)
        assert all(s.node(NodeId("s")).attempt == 1 for s in states)  # deferrals spend no attempt
        assert most == 2
        waits = [e.event for eid in ids for e in await one.store.read_log(eid) if isinstance(e.event, NodeWaiting)]
        assert waits and {w.reason for w in waits} == {"concurrency-limit"}
        for state in states:
            await one.replayed(state)
