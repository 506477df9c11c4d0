"""The core's start use case, called directly as a webhook, a cron trigger or a parent workflow would: real Redis
for the registry, the idempotency keys and the log, real Postgres for the payloads of large inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis
from spane_core.claim_check import canonical_json, payload_id, reference
from spane_core.definition import WorkflowDefinition
from spane_core.errors import InvalidInput, NotFound
from spane_core.events import ExecutionStarted
from spane_core.ids import WorkflowId
from spane_core.readmodel import migrate
from spane_core.store.executions import ExecutionStore, now_ms
from spane_core.store.payloads import PayloadStore
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry
from spane_core.usecases import Started, start_workflow

pytestmark = pytest.mark.integration

LIMIT = 1_000
FLOW = WorkflowId("start-flow")


@dataclass
class Core:
    redis: Redis
    workflows: WorkflowRegistry
    executions: ExecutionStore
    payloads: PayloadStore
    db: asyncpg.Pool

    async def start(
        self, workflow_id: str, value: Any = None, *, version: int | None = None, key: str | None = None
    ) -> Started:
        return await start_workflow(
            self.redis,
            self.workflows,
            self.executions,
            self.payloads,
            WorkflowId(workflow_id),
            value,
            version=version,
            idempotency_key=key,
        )


@pytest.fixture
async def core(redis_url: str, database_url: str) -> AsyncIterator[Core]:
    redis = Redis.from_url(redis_url)
    db = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    workflows = WorkflowRegistry(redis)
    definition = {"id": FLOW, "name": "start", "nodes": [{"id": "a", "type": "transform"}]}
    await workflows.register(msgspec.convert(definition, WorkflowDefinition), now_ms())
    try:
        yield Core(
            redis=redis,
            workflows=workflows,
            executions=redis_execution_store(redis, workflows),
            payloads=PayloadStore(db, inline_max=LIMIT, cache_bytes=1 << 20, prepare=migrate),
            db=db,
        )
    finally:
        await db.close()
        await redis.aclose()


async def test_the_same_idempotency_key_starts_one_execution(core: Core) -> None:
    first = await core.start(FLOW, {"n": 1}, key="order-7")
    again = await core.start(FLOW, {"n": 2}, key="order-7")
    other = await core.start(FLOW, {"n": 1}, key="order-8")
    assert first.created and not again.created and other.created
    assert again.state.execution_id == first.state.execution_id != other.state.execution_id
    assert again.state.input == {"n": 1}  # the execution the key named, not a second one with the new input
    log = await core.executions.read_log(first.state.execution_id)
    assert [e.event.input for e in log if isinstance(e.event, ExecutionStarted)] == [{"n": 1}]


async def test_without_a_key_every_start_is_a_new_execution_of_the_latest_version(core: Core) -> None:
    first, second = await core.start(FLOW), await core.start(FLOW)
    assert first.created and second.created
    assert first.state.execution_id != second.state.execution_id
    assert first.state.workflow_id == FLOW and first.state.workflow_version == 1


async def test_an_unknown_workflow_is_not_found(core: Core) -> None:
    with pytest.raises(NotFound):
        await core.start("no-such-flow", key="k")
    assert await core.redis.keys("*no-such-flow*") == []  # nothing claimed for it


async def test_an_unknown_version_is_invalid_input_naming_the_version(core: Core) -> None:
    with pytest.raises(InvalidInput) as raised:
        await core.start(FLOW, version=2)
    assert [e.path for e in raised.value.errors] == ["version"]


async def test_an_input_over_the_inline_limit_is_stored_aside_and_the_log_holds_its_reference(core: Core) -> None:
    big = ["x" * (2 * LIMIT)]
    started = await core.start(FLOW, big)
    body = canonical_json(big)
    assert started.state.input == reference(payload_id(body), len(body))
    async with core.db.acquire() as conn:
        stored = await conn.fetchval("SELECT body FROM payloads WHERE id = $1", payload_id(body))
    assert bytes(stored) == body
    assert await core.payloads.resolve(started.state.input) == big


async def test_an_input_holding_a_reference_is_refused(core: Core) -> None:
    with pytest.raises(InvalidInput) as raised:
        await core.start(FLOW, {"copy": reference(payload_id(b"{}"), 2)})
    assert [e.path for e in raised.value.errors] == ["input"]
