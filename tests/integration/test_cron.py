"""Cron triggers against real Redis and Postgres: each tick fires once across racing schedulers, missed ticks are
not replayed, a new version or a deletion stops a schedule, and GET /api/schedules shows it all.

The loops run on a simulated clock (``fire_due(now)``), so the counts are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from spane_core.ids import WorkflowId
from spane_core.readmodel import migrate
from spane_core.schedules import schedules_of, tick_execution_id
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry
from spane_scheduler.cron import CronLoop

from .api_support import api_client, make_settings, unique
from .worker_support import Engine, engine

pytestmark = pytest.mark.integration

T0 = 1_800_000_000_000  # a whole second, epoch ms


@pytest.fixture
async def e(redis_url: str) -> AsyncIterator[Engine]:
    async with engine(redis_url) as e:
        yield e


@pytest.fixture
async def payloads(database_url: str) -> AsyncIterator[PayloadStore]:
    db = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    try:
        yield PayloadStore(db, 51200, 1 << 20, prepare=migrate)
    finally:
        await db.close()


def loop(e: Engine, payloads: PayloadStore) -> CronLoop:
    # A loop of its own registry: as in another scheduler process.
    return CronLoop(e.redis, WorkflowRegistry(e.redis), e.store, payloads, interval_ms=100)


async def register(e: Engine, workflow_id: str, triggers: list[dict[str, Any]]) -> None:
    await e.register(workflow_id, [{"id": "a", "type": "transform"}], triggers=triggers)


def every_second(**config: Any) -> list[dict[str, Any]]:
    return [{"type": "schedule", "config": {"cron": "* * * * * *", **config}}]


async def executions_of(redis: Redis, workflow_id: str) -> list[str]:
    found = []
    async for key in redis.scan_iter(match="spane:{*}:exec:*", count=1000):
        if await redis.hget(key, "w") == workflow_id.encode():
            found.append(key.decode().rsplit(":", 1)[1])
    return sorted(found)


async def test_two_schedulers_fire_each_tick_exactly_once(e: Engine, payloads: PayloadStore) -> None:
    wf = unique("cron")
    await register(e, wf, every_second(input={"hello": "cron"}))
    first, second = loop(e, payloads), loop(e, payloads)
    await asyncio.gather(first.fire_due(T0 - 500), second.fire_due(T0 - 500))  # both see it: armed, nothing fires
    fired = 0
    for step in range(1, 51):  # five seconds in steps of 100 ms, both racing on every step
        now = T0 - 500 + step * 100
        fired += sum(await asyncio.gather(first.fire_due(now), second.fire_due(now)))
    assert fired == 5
    (schedule,) = schedules_of(await e.workflows.get(WorkflowId(wf)))
    expected = sorted(tick_execution_id(schedule, T0 + i * 1000) for i in range(5))
    assert await executions_of(e.redis, wf) == expected
    state = await e.store.load(expected[0])
    assert state is not None and state.input == {"hello": "cron"}


async def test_missed_ticks_are_not_replayed_only_the_latest_runs(e: Engine, payloads: PayloadStore) -> None:
    wf = unique("cron-missed")
    await register(e, wf, every_second())
    scheduler = loop(e, payloads)
    await scheduler.fire_due(T0)
    assert await scheduler.fire_due(T0 + 60_500) == 1  # a minute down: one start, for the tick at T0 + 60 s
    assert await scheduler.fire_due(T0 + 60_900) == 0
    (schedule,) = schedules_of(await e.workflows.get(WorkflowId(wf)))
    assert await executions_of(e.redis, wf) == [tick_execution_id(schedule, T0 + 60_000)]


async def test_a_new_version_or_a_deletion_stops_the_old_schedule(e: Engine, payloads: PayloadStore) -> None:
    wf = unique("cron-stop")
    await register(e, wf, every_second())
    scheduler = loop(e, payloads)
    await scheduler.fire_due(T0)
    assert await scheduler.fire_due(T0 + 1000) == 1
    await register(e, wf, [{"type": "schedule", "config": {"cron": "0 0 1 1 *"}}])  # yearly now
    assert await scheduler.fire_due(T0 + 2000) == 0  # the new schedule is armed, the old one is gone
    assert await scheduler.fire_due(T0 + 3000) == 0
    await register(e, wf, every_second())  # back to every second, then deleted
    await e.workflows.delete(wf, T0)
    assert await scheduler.fire_due(T0 + 5000) == 0
    assert len(await executions_of(e.redis, wf)) == 1


async def test_unchanged_schedules_survive_a_new_version_without_firing_twice(
    e: Engine, payloads: PayloadStore
) -> None:
    wf = unique("cron-keep")
    await register(e, wf, every_second())
    scheduler = loop(e, payloads)
    await scheduler.fire_due(T0)
    assert await scheduler.fire_due(T0 + 1000) == 1
    await register(e, wf, [*every_second(), {"type": "webhook", "config": {"path": unique("p")}}])
    assert await scheduler.fire_due(T0 + 1500) == 0
    assert await scheduler.fire_due(T0 + 2000) == 1


async def test_the_schedules_route_lists_next_and_last_runs(
    e: Engine, payloads: PayloadStore, redis_url: str, database_url: str
) -> None:
    wf = unique("cron-listed")
    await register(e, wf, every_second(timezone="Europe/Paris"))
    scheduler = loop(e, payloads)
    async with api_client(make_settings(redis_url, database_url)) as client:
        items = [i for i in (await client.get("/api/schedules")).json()["items"] if i["workflowId"] == wf]
        assert items == [{"workflowId": wf, "cron": "* * * * * *", "timezone": "Europe/Paris",
                          "nextRunAt": items[0]["nextRunAt"], "lastRunAt": None, "lastExecutionId": None}]  # fmt: skip
        assert items[0]["nextRunAt"].endswith("Z")
        await scheduler.fire_due(T0)
        await scheduler.fire_due(T0 + 1000)
        (item,) = [i for i in (await client.get("/api/schedules")).json()["items"] if i["workflowId"] == wf]
        (schedule,) = schedules_of(await e.workflows.get(WorkflowId(wf)))
        assert item["lastRunAt"] == "2027-01-15T08:00:01.000Z"
        assert item["lastExecutionId"] == tick_execution_id(schedule, T0 + 1000)


async def test_a_bad_cron_or_zone_is_422(redis_url: str, database_url: str) -> None:
    async with api_client(make_settings(redis_url, database_url)) as client:
        for config, path in (
            ({"cron": "61 * * * *"}, "cron"),
            ({"cron": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ):
            definition = {"id": unique("bad"), "name": "b", "nodes": [{"id": "a", "type": "transform"}],
                          "triggers": [{"type": "schedule", "config": config}]}  # fmt: skip
            response = await client.post("/api/workflows", json=definition)
            assert response.status_code == 422
            assert [e["path"] for e in response.json()["errors"]] == [f"triggers[0].config.{path}"]
