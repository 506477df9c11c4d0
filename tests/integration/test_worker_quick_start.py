"""A quick node's start is recorded with its result, in one commit; a slow node's start is recorded while it runs;
and running a task before recording its start never runs a node that may not start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from spane_core.commands import Pause, Resume
from spane_core.events import NodeCompleted, NodeStarted
from spane_core.ids import NodeId
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.store.executions import Transition

from .worker_support import engine, running

pytestmark = pytest.mark.integration


def registry(runs: list[str], sleep_s: float = 0.0) -> ExecutorRegistry:
    async def work(ctx: NodeContext) -> Any:
        runs.append(ctx.node_id)
        await asyncio.sleep(sleep_s)
        return {"ran": ctx.node_id}

    executors = ExecutorRegistry()
    executors.register("work", work)
    return executors


async def test_a_quick_node_records_its_start_and_result_in_one_commit(redis_url: str) -> None:
    runs: list[str] = []
    async with engine(redis_url, worker_announce_after_ms=1_000) as e:
        wf = await e.register("quick", [{"id": "a", "type": "work"}])
        (eid,) = await e.start(wf)
        async with running(e, registry(runs)):
            (state,) = await e.wait_finished([eid])
        log = await e.store.read_log(eid)
        started = [x for x in log if isinstance(x.event, NodeStarted)]
        completed = [x for x in log if isinstance(x.event, NodeCompleted)]
        assert len(started) == len(completed) == 1
        assert completed[0].seq == started[0].seq + 1 and completed[0].at == started[0].at  # one commit
        assert started[0].event.started_at is not None and started[0].event.started_at <= started[0].at  # type: ignore[union-attr]
        assert state.node(NodeId("a")).started_at == started[0].event.started_at  # type: ignore[union-attr]
        assert runs == ["a"]


async def test_a_slow_node_shows_as_running_while_it_runs(redis_url: str) -> None:
    runs: list[str] = []
    async with engine(redis_url, worker_announce_after_ms=20) as e:
        wf = await e.register("slow", [{"id": "a", "type": "work"}])
        (eid,) = await e.start(wf)
        async with running(e, registry(runs, sleep_s=0.5)):
            for _ in range(100):
                state = await e.store.load(eid)
                if state is not None and state.node(NodeId("a")).status == "running":
                    break
                await asyncio.sleep(0.01)
            assert state is not None and state.node(NodeId("a")).status == "running"
            (state,) = await e.wait_finished([eid])
        log = await e.store.read_log(eid)
        started = next(x for x in log if isinstance(x.event, NodeStarted))
        completed = next(x for x in log if isinstance(x.event, NodeCompleted))
        assert completed.at - started.at >= 300  # recorded while it ran, not with its result
        assert runs == ["a"]


async def test_a_task_of_a_paused_execution_is_not_run_until_resume(redis_url: str) -> None:
    runs: list[str] = []
    async with engine(redis_url, task_visibility_timeout_ms=300) as e:
        wf = await e.register("paused", [{"id": "a", "type": "work"}])
        (eid,) = await e.start(wf)
        await e.store.apply(Transition(eid, [Pause()]))
        async with running(e, registry(runs)):
            await asyncio.sleep(0.8)  # the task is read (and reclaimed) while the execution is paused
            assert runs == []
            await e.store.apply(Transition(eid, [Resume()]))
            (state,) = await e.wait_finished([eid])
        assert state.status == "completed"
        assert runs == ["a"]
