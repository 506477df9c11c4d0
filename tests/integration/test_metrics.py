"""Each metric of issue 11 moves when its thing happens: executions, node runs, tasks waiting and pending, timers,
projector lag, dead letters and the payload store, all in one process's registry as `spane dev` has it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from spane_core.observe.metrics import Metrics
from spane_core.observe.system import SystemGauges
from spane_core.readmodel import migrate
from spane_core.sdk import ExecutorRegistry, NodeContext, NonRetryableError
from spane_core.state import ExecutionStatus
from spane_core.store.payloads import PayloadStore
from spane_core.usecases import start_execution
from spane_projector import Projector
from spane_projector.observer import Observer
from spane_scheduler.timers import TimerLoop
from spane_worker.consumer import Worker
from spane_worker.service import worker_executors

from .worker_support import engine

pytestmark = pytest.mark.integration


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` (0 when absent)."""
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def refuse(ctx: NodeContext) -> None:
    raise NonRetryableError("refused")


def executors() -> ExecutorRegistry:
    registry = ExecutorRegistry()
    registry.register("refuse", refuse)
    return registry


async def test_each_metric_moves_when_its_thing_happens(redis_url: str, database_url: str, pool: asyncpg.Pool) -> None:
    metrics = Metrics()
    async with engine(redis_url, payload_inline_max=256) as e, httpx.AsyncClient() as http:
        gauges = SystemGauges(metrics, e.redis, pool, e.settings.partitions)
        payloads = PayloadStore(pool, e.settings.payload_inline_max, 0)
        ok = await e.register("ok", [
            {"id": "a", "type": "transform", "outputs": ["wait"]},
            {"id": "wait", "type": "delay", "config": {"ms": 1}},
        ])  # fmt: skip
        bad = await e.register("bad", [{"id": "x", "type": "refuse"}])
        started = [
            await start_execution(e.redis, e.store, payloads, ok, {"big": "x" * 1000}),
            await start_execution(e.redis, e.store, payloads, bad, {}),
        ]
        tasks = "spane:{0}:tasks"

        # Before any worker or projector: tasks wait, commits wait for the projector, the big input is stored.
        await gauges.refresh()
        assert sample(metrics, "spane_tasks_waiting", stream=tasks) == 2
        assert sample(metrics, "spane_projector_lag_events") >= 2
        assert sample(metrics, "spane_payload_store_bytes") > 0

        # A worker runs the nodes; the delay's timer falls due with no scheduler to fire it.
        stop = asyncio.Event()
        worker = Worker(e.redis, e.store, e.workflows, worker_executors(http, executors()), e.settings,
                        block_ms=100, payloads=payloads, metrics=metrics)  # fmt: skip
        running = asyncio.create_task(worker.run(stop))

        async def timer_due() -> bool:
            await gauges.refresh()
            return sample(metrics, "spane_timers_due") == 1

        await until(timer_due, "the delay's timer never fell due")
        assert sample(metrics, "spane_tasks_waiting", stream=tasks) == 0
        assert sample(metrics, "spane_node_runs_total", type="transform", status="completed") == 1
        assert sample(metrics, "spane_node_runs_total", type="refuse", status="failed") == 1
        assert sample(metrics, "spane_node_run_duration_seconds_count", type="transform", status="completed") == 1

        timers = TimerLoop(e.store, e.settings.partitions, e.settings.scheduler_interval_ms, metrics=metrics)
        await timers.fire_due(e.store.keys(started[0].state.execution_id))
        assert sample(metrics, "spane_timers_fired_total") == 1
        states = await e.wait_finished([s.state.execution_id for s in started])
        assert [s.status for s in states] == [ExecutionStatus.COMPLETED, ExecutionStatus.FAILED]
        stop.set()
        await running

        # The projector folds the log: executions counted once each, the dead letter stored, the lag gone.
        halt = asyncio.Event()
        projector = Projector(e.redis, pool, consumer="p", observer=Observer(metrics), block_ms=50)
        projecting = asyncio.create_task(projector.run(halt))

        async def caught_up() -> bool:
            await gauges.refresh()
            return sample(metrics, "spane_projector_lag_events") == 0 and sample(metrics, "spane_dlq_entries") == 1

        await until(caught_up, "the projector did not catch up")
        halt.set()
        await projecting
        assert sample(metrics, "spane_executions_started_total", workflow="ok") == 1
        assert sample(metrics, "spane_executions_started_total", workflow="bad") == 1
        assert sample(metrics, "spane_executions_finished_total", workflow="ok", status="completed") == 1
        assert sample(metrics, "spane_executions_finished_total", workflow="bad", status="failed") == 1
        assert sample(metrics, "spane_projector_events_total") > 0
        assert sample(metrics, "spane_projector_lag_seconds") == 0
        assert sample(metrics, "spane_timers_due") == 0
