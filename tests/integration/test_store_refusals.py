"""A transition that the store refuses for good (here: Redis refuses a write, a key holding another type) is not
tried forever: after a few tries its execution fails with an internal error naming the cause, said in the log, in
/metrics and in the API's answer; the refused commits write nothing.

The refusal is real: a key of one partition is made to hold a string, so that the commit script's writes to it
fail. Partition 1 of 2 is used, a keyspace no other test touches; the key is removed afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from spane_core.commands import Start
from spane_core.ids import ExecutionId, new_execution_id
from spane_core.keys import STATS, WORKER_GROUP, PartitionKeys, for_execution
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.state import ExecutionStatus
from spane_core.store.executions import Transition
from spane_core.store.refusals import FAILED_COUNTER, STORE_TRIES

from .api_support import Client, api_client, chain, make_settings, save
from .worker_support import engine, running

pytestmark = pytest.mark.integration

PARTITIONS = 2
BROKEN = PartitionKeys(1)


def id_in_broken_partition() -> ExecutionId:
    while True:
        eid = new_execution_id()
        if for_execution(eid, PARTITIONS).partition == BROKEN.partition:
            return eid


@pytest.fixture
async def broken(redis: Redis) -> AsyncIterator[Redis]:
    yield redis
    await redis.delete(BROKEN.tasks, BROKEN.timers)


async def failed_internally(redis: Redis) -> int:
    return int(cast(bytes | None, await redis.hget(STATS, FAILED_COUNTER)) or 0)


async def test_a_result_the_store_refuses_fails_the_execution_and_settles_its_task(
    redis_url: str, broken: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async def flaky(ctx: NodeContext) -> Any:
        raise RuntimeError("try again")  # a retryable failure: recording it arms a retry timer

    registry = ExecutorRegistry()
    registry.register("flaky", flaky)
    before = await failed_internally(broken)
    async with engine(redis_url, partitions=PARTITIONS) as e:
        wf = await e.register("refused-result", [{"id": "a", "type": "flaky"}])
        eid = id_in_broken_partition()
        await e.store.apply(Transition(eid, [Start(eid, None)], workflow=wf))
        await broken.set(BROKEN.timers, "not a sorted set")  # arming the retry timer is refused for good
        with caplog.at_level(logging.WARNING, logger="spane.store"):
            async with running(e, registry, scheduler=False):
                (state,) = await e.wait_finished([eid])
        log = await e.store.read_log(eid)
    assert state.status is ExecutionStatus.FAILED and state.error is not None
    assert state.error.type == "InternalError"
    assert "WRONGTYPE" in state.error.message and f"{STORE_TRIES} times" in state.error.message
    # Nothing of the refused commits was written: no node.failed, and the failure is the log's last event.
    assert log[-1].type == "execution.failed" and [envelope.seq for envelope in log] == list(range(1, len(log) + 1))
    assert not any(envelope.type == "node.failed" for envelope in log)
    pending = await broken.xpending(BROKEN.tasks, WORKER_GROUP)
    assert pending["pending"] == 0  # the task was settled with the failure, not left to be reclaimed forever
    assert await failed_internally(broken) == before + 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and eid in r.getMessage()]
    assert errors and "WRONGTYPE" in errors[0].getMessage()


async def test_a_start_the_store_refuses_is_an_execution_failed_in_the_api_and_in_metrics(
    redis_url: str, database_url: str, broken: Redis
) -> None:
    await broken.set(BROKEN.tasks, "not a stream")  # queueing the first node is refused for good
    settings = make_settings(redis_url, database_url, partitions=PARTITIONS)
    async with api_client(settings) as client:
        wf = chain()
        await save(client, wf)
        execution = await _execution_in_broken_partition(client, wf["id"])
        assert execution["status"] == "failed"
        error = execution["error"]
        assert error["type"] == "InternalError" and "WRONGTYPE" in error["message"]
        history = (await client.get(f"/api/executions/{execution['executionId']}/history")).json()
        assert [event["type"] for event in history["events"]] == ["execution.started", "execution.failed"]
        metrics = (await client.get("/metrics")).text
    count = await failed_internally(broken)
    assert count >= 1 and f"spane_executions_failed_internal_total {float(count)}" in metrics


async def _execution_in_broken_partition(client: Client, workflow_id: str) -> dict[str, Any]:
    """Start executions until one lands in the broken partition; its GET answer."""
    for _ in range(64):
        response = await client.post(f"/api/workflows/{workflow_id}/execute", json={"input": None})
        assert response.status_code == 202, response.text
        execution_id = response.json()["executionId"]
        if for_execution(execution_id, PARTITIONS).partition == BROKEN.partition:
            answer: dict[str, Any] = (await client.get(f"/api/executions/{execution_id}")).json()
            return answer
    raise AssertionError("no execution landed in the broken partition")


async def test_an_output_that_cannot_be_stored_fails_the_execution_instead_of_its_task_looping(redis_url: str) -> None:
    async def huge(ctx: NodeContext) -> Any:
        return {"n": 10**20}  # valid JSON, but no 64-bit integer holds it

    registry = ExecutorRegistry()
    registry.register("huge", huge)
    async with engine(redis_url) as e:
        wf = await e.register("unstorable-output", [{"id": "a", "type": "huge"}])
        (eid,) = await e.start(wf)
        async with running(e, registry, scheduler=False):
            (state,) = await e.wait_finished([eid])
        await e.replayed(state)
    assert state.status is ExecutionStatus.FAILED and state.error is not None
    assert state.error.type == "InternalError" and "cannot be stored" in state.error.message
