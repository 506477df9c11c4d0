"""Builders for the worker integration tests: a store on the test Redis, workflows from compact specs, and a worker
plus a scheduler running in-process until the test is done."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from spane_core.commands import Start
from spane_core.definition import Workflow
from spane_core.errors import StorageUnavailable
from spane_core.ids import ExecutionId, WorkflowId, new_execution_id
from spane_core.sdk import ExecutorRegistry
from spane_core.settings import Settings
from spane_core.state import FINISHED_EXECUTION, ExecutionState, fold
from spane_core.store.connection import open_redis
from spane_core.store.executions import ExecutionStore, Transition, now_ms
from spane_core.store.payloads import PayloadStore
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry
from spane_core.validation import BUILTIN_NODE_TYPES, parse_definition
from spane_scheduler.timers import TimerLoop
from spane_worker.consumer import Worker
from spane_worker.service import worker_executors


@dataclass
class Engine:
    redis: Redis
    workflows: WorkflowRegistry
    store: ExecutionStore
    settings: Settings

    async def register(self, workflow_id: str, nodes: list[dict[str, Any]], **extra: Any) -> Workflow:
        """Registered as the API registers it: validated (the built-in types' configs checked, a policy in
        ``config`` read), a test's own node types taken as they come."""
        raw = {"id": workflow_id, "name": workflow_id, "nodes": nodes, **extra}
        own_types = {str(node["type"]): None for node in nodes if node.get("type") not in BUILTIN_NODE_TYPES}
        definition = parse_definition(raw, {**BUILTIN_NODE_TYPES, **own_types})
        version, _ = await self.workflows.register(definition, now_ms())
        return await self.workflows.get(WorkflowId(workflow_id), version)

    async def start(self, wf: Workflow, input: Any = None, count: int = 1) -> list[ExecutionId]:
        ids = [new_execution_id() for _ in range(count)]
        outcomes = await self.store.transact([Transition(eid, [Start(eid, input)], workflow=wf) for eid in ids])
        assert all(o.error is None for o in outcomes)
        return ids

    async def wait_finished(self, ids: Sequence[str], within: float = 20.0) -> list[ExecutionState]:
        """The states of ``ids`` once every one of them has finished (completed, failed or cancelled)."""
        deadline = time.monotonic() + within
        while True:
            try:
                states = await self.store.load_many(list(ids))
            except StorageUnavailable:  # a test that drops Redis's connections: read again
                await asyncio.sleep(0.02)
                continue
            if all(s is not None and s.status in FINISHED_EXECUTION for s in states):
                return [s for s in states if s is not None]
            if time.monotonic() > deadline:
                unfinished = {
                    s.execution_id: s.status for s in states if s is not None and s.status not in FINISHED_EXECUTION
                }
                raise AssertionError(f"{len(unfinished)} execution(s) did not finish: {list(unfinished.items())[:5]}")
            await asyncio.sleep(0.02)

    async def replayed(self, state: ExecutionState) -> ExecutionState:
        """``state`` after checking that folding its log gives the same state as the stored snapshot."""
        replay = fold(await self.store.read_log(state.execution_id))
        assert replay == state
        return state

    async def node_events(self, execution_id: str, kind: str) -> list[str]:
        """The node ids of the ``kind`` events (e.g. ``node.completed``) in the execution's log, in order."""
        return [getattr(e.event, "node_id", "") for e in await self.store.read_log(execution_id) if e.type == kind]


def settings_for(redis_url: str, **changes: Any) -> Settings:
    return Settings(**{"redis_url": redis_url, "consumer_name": "test-worker", **changes})


@contextlib.asynccontextmanager
async def engine(redis_url: str, **settings: Any) -> AsyncIterator[Engine]:
    s = settings_for(redis_url, **settings)
    redis = open_redis(s)  # as the services open it: a blocking pool sized from the settings
    try:
        workflows = WorkflowRegistry(redis)
        yield Engine(redis, workflows, redis_execution_store(redis, workflows, s.partitions), s)
    finally:
        await redis.aclose()


def stacks_of_all_tasks() -> str:
    """Where every task of the loop is waiting: what a test that hangs prints."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    return out.getvalue()


@contextlib.asynccontextmanager
async def running(
    e: Engine, registry: ExecutorRegistry | None = None, scheduler: bool = True, payloads: PayloadStore | None = None
) -> AsyncIterator[Worker]:
    """A worker (and a scheduler) working on ``e`` for the duration of the block; stopped cleanly after it."""
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        executors = worker_executors(http, registry)
        worker = Worker(e.redis, e.store, e.workflows, executors, e.settings, block_ms=200, payloads=payloads)
        tasks = [asyncio.create_task(worker.run(stop))]
        if scheduler:
            timers = TimerLoop(e.store, e.settings.partitions, e.settings.scheduler_interval_ms)
            tasks.append(asyncio.create_task(timers.run(stop)))
        try:
            yield worker
        finally:
            stop.set()
            done, pending = await asyncio.wait(tasks, timeout=10)
            assert not pending, f"the worker or the scheduler did not stop:\n{stacks_of_all_tasks()}"
            for task in done:
                task.result()  # re-raise what a loop raised
