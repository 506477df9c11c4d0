"""A stopping worker (SIGTERM) finishes what it can within its shutdown grace and hands the rest back at once: another
worker takes those tasks without waiting for the visibility timeout, and each node's result is recorded once."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import httpx
import pytest
from spane_core.ids import NodeId
from spane_core.keys import WORKER_GROUP, for_execution
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.state import ExecutionStatus, NodeStatus
from spane_worker.consumer import Worker
from spane_worker.service import worker_executors

from .worker_support import engine, running

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000  # a visibility timeout no test waits out
EXECUTIONS = 6


async def test_a_stopping_worker_hands_back_the_tasks_it_cannot_finish(redis_url: str) -> None:
    first_runs: set[tuple[str, str]] = set()
    all_hang = asyncio.Event()

    async def stuck_once(ctx: NodeContext) -> Any:
        """Hangs on its first run of each node (the stopping worker's), returns at once on the next."""
        key = (ctx.execution_id, ctx.node_id)
        if key not in first_runs:
            first_runs.add(key)
            if len(first_runs) == EXECUTIONS:
                all_hang.set()
            await asyncio.sleep(3600)
        return {"node": ctx.node_id}

    registry = ExecutorRegistry()
    registry.register("stuck-once", stuck_once)
    async with engine(redis_url, task_visibility_timeout_ms=HOUR_MS, consumer_name="stopping") as e:
        wf = await e.register(
            "hand-back", [{"id": "a", "type": "stuck-once"}, {"id": "b", "type": "transform", "inputs": ["a"]}]
        )
        ids = await e.start(wf, {}, count=EXECUTIONS)

        stop = asyncio.Event()
        async with httpx.AsyncClient() as http:
            stopping = Worker(e.redis, e.store, e.workflows, worker_executors(http, registry), e.settings,
                              block_ms=100, shutdown_grace_s=0.2)  # fmt: skip
            run = asyncio.create_task(stopping.run(stop))
            await asyncio.wait_for(all_hang.wait(), timeout=30)  # every node `a` hangs in the stopping worker
            stop.set()
            await asyncio.wait_for(run, timeout=10)

        stream = for_execution(ids[0], e.settings.partitions).tasks
        pending = await e.redis.xpending_range(stream, WORKER_GROUP, "-", "+", 100, consumername="stopping")
        assert pending == []  # nothing left waiting for the visibility timeout

        taking_over = engine(redis_url, task_visibility_timeout_ms=HOUR_MS, consumer_name="taking-over")
        async with taking_over as e2, running(e2, registry):
            finished = await e2.wait_finished(ids, within=30)
        assert [s.status for s in finished] == [ExecutionStatus.COMPLETED] * EXECUTIONS
        for state in finished:
            assert state.node(NodeId("a")).status is NodeStatus.COMPLETED
            completed = collections.Counter(await e.node_events(state.execution_id, "node.completed"))
            assert completed == {"a": 1, "b": 1}
