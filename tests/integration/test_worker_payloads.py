"""Large values through the worker, on real Redis and Postgres: executors see real values, while the log, the
snapshots and the tasks carry references; a result whose payload cannot be stored is not recorded until it can."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from spane_core.claim_check import canonical_json, payload_id, reference, reference_id
from spane_core.events import NodeCompleted
from spane_core.ids import NodeId
from spane_core.readmodel import migrate
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.state import ExecutionStatus, NodeStatus
from spane_core.store.payloads import PayloadStore

from spane.embedded import free_port

from .worker_support import Engine, engine, running

pytestmark = pytest.mark.integration

LIMIT = 4_096
BIG = [{"blob": "z" * 20_000}]  # stored whole (not an object), so the same reference wherever it is passed
BIG_REF = reference(payload_id(canonical_json(BIG)), len(canonical_json(BIG)))
SMALL = 2_048  # bytes: every snapshot and log entry stays under this


@contextlib.asynccontextmanager
async def payload_store(database_url: str) -> AsyncIterator[PayloadStore]:
    db = await asyncpg.create_pool(database_url, min_size=0, max_size=4)
    try:
        yield PayloadStore(db, inline_max=LIMIT, cache_bytes=1 << 20, prepare=migrate)
    finally:
        await db.close()


def node(node_id: str, type: str = "transform", inputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type, "inputs": inputs or [], **extra}


def recorder(seen: dict[str, Any], output: Any = None, ran: asyncio.Event | None = None) -> ExecutorRegistry:
    """``seen``: each node's input by node id; ``big`` nodes answer ``BIG`` (and set ``ran``), ``see`` nodes
    ``output``."""

    async def see(ctx: NodeContext) -> Any:
        seen[ctx.node_id] = ctx.input
        return output

    async def big(ctx: NodeContext) -> Any:
        seen[ctx.node_id] = ctx.input
        if ran is not None:
            ran.set()
        return BIG

    registry = ExecutorRegistry()
    registry.register("see", see)
    registry.register("big", big)
    return registry


async def assert_redis_holds_no_large_value(e: Engine, execution_id: str) -> None:
    keys = e.store.keys(execution_id)
    snapshot = await e.redis.hget(keys.snapshot(execution_id), "s")
    assert snapshot is not None and len(snapshot) < SMALL
    entries = await e.redis.lrange(keys.log(execution_id), 0, -1)
    assert entries and max(len(entry) for entry in entries) < SMALL
    tasks = await e.redis.xrange(keys.tasks) or []
    assert all(len(value) < SMALL for _id, fields in tasks for value in (fields or {}).values())


async def stored_ids(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [row["id"] for row in await conn.fetch("SELECT id FROM payloads")]
    finally:
        await conn.close()


async def test_a_large_input_goes_through_a_diamond_as_one_stored_payload(redis_url: str, database_url: str) -> None:
    seen: dict[str, Any] = {}
    async with engine(redis_url, payload_inline_max=LIMIT) as e, payload_store(database_url) as store:
        wf = await e.register("diamond", [
            node("start"),
            *(node(b, inputs=["start"]) for b in ("a", "b", "c")),
            node("join", inputs=["a", "b", "c"]),
            node("end", "see", inputs=["join"]),
        ])  # fmt: skip
        (eid,) = await e.start(wf, await store.store(BIG))  # as the API starts it
        async with running(e, recorder(seen), payloads=store):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert seen["end"] == {"a": BIG, "b": BIG, "c": BIG}  # executors see the real values
        assert state.input == BIG_REF
        outputs = {n: state.node(NodeId(n)).output for n in ("start", "a", "b", "c", "join")}
        assert outputs == {**dict.fromkeys(("start", "a", "b", "c"), BIG_REF), "join": dict.fromkeys("abc", BIG_REF)}
        await e.replayed(state)
        await assert_redis_holds_no_large_value(e, eid)
        assert await stored_ids(database_url) == [BIG_REF["$spane.payload"]]  # once, though six nodes passed it on


async def test_a_large_output_is_stored_and_its_child_gets_the_real_value(redis_url: str, database_url: str) -> None:
    seen: dict[str, Any] = {}
    async with engine(redis_url, payload_inline_max=LIMIT) as e, payload_store(database_url) as store:
        wf = await e.register("out", [node("make", "big"), node("use", "see", inputs=["make"])])
        (eid,) = await e.start(wf, {"n": 1})
        async with running(e, recorder(seen, output={"done": True}), payloads=store):
            (state,) = await e.wait_finished([eid])
        assert state.node(NodeId("make")).output == BIG_REF
        assert seen == {"make": {"n": 1}, "use": BIG}
        assert state.output == {"done": True}
        assert await store.resolve(state.node(NodeId("make")).output) == BIG
        await assert_redis_holds_no_large_value(e, eid)


async def test_a_condition_chooses_by_the_real_value(redis_url: str, database_url: str) -> None:
    seen: dict[str, Any] = {}
    value = {"kind": "big", "blob": "q" * 20_000}
    async with engine(redis_url, payload_inline_max=LIMIT) as e, payload_store(database_url) as store:
        wf = await e.register("branch", [
            node("check", "condition", config={"expression": "kind == 'big' && length(blob) > `10000`",
                                               "trueBranch": "yes", "falseBranch": "no"}),
            node("yes", "see", inputs=["check"]),
            node("no", "see", inputs=["check"]),
        ])  # fmt: skip
        stored = await store.store(value)
        assert reference_id(stored["blob"]) is not None  # an object keeps its shape; its large member is stored
        (eid,) = await e.start(wf, stored)
        async with running(e, recorder(seen), payloads=store):
            (state,) = await e.wait_finished([eid])
        assert (state.node(NodeId("yes")).status, state.node(NodeId("no")).status) == (
            NodeStatus.COMPLETED,
            NodeStatus.SKIPPED,
        )
        assert seen == {"yes": value}
        assert len(await stored_ids(database_url)) == 1  # the condition passed it on: nothing new to store


async def test_a_result_waits_for_the_payload_store_to_come_back_and_its_node_runs_once(
    redis_url: str, postgres_server: str
) -> None:
    seen: dict[str, Any] = {}
    name = f"later_{uuid.uuid4().hex[:8]}"
    later = urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))  # no such database yet
    async with engine(redis_url, payload_inline_max=LIMIT, task_visibility_timeout_ms=600_000) as e:
        wf = await e.register("wait-store", [node("make", "big"), node("use", "see", inputs=["make"])])
        (eid,) = await e.start(wf, {"n": 1})
        ran = asyncio.Event()
        async with payload_store(later) as store, running(e, recorder(seen, ran=ran), payloads=store):
            await asyncio.wait_for(ran.wait(), timeout=20)
            await asyncio.sleep(0.3)  # a few tries to store the output fail meanwhile
            admin = await asyncpg.connect(postgres_server)
            try:
                await admin.execute(f"CREATE DATABASE {name}")
            finally:
                await admin.close()
            (state,) = await e.wait_finished([eid])
        started = await e.node_events(eid, "node.started")
    assert state.status is ExecutionStatus.COMPLETED and state.node(NodeId("make")).output == BIG_REF
    assert seen == {"make": {"n": 1}, "use": BIG}
    assert started == ["make", "use"] and state.node(NodeId("make")).attempt == 1  # one try, never run again
    assert await stored_ids(later) == [BIG_REF["$spane.payload"]]


async def test_a_result_whose_payload_cannot_be_stored_when_the_worker_stops_is_run_again_by_a_reclaim(
    redis_url: str, database_url: str
) -> None:
    seen: dict[str, Any] = {}
    away = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    # A long announce delay: the node's start is recorded with its result, so neither is when the result is not.
    settings = {"payload_inline_max": LIMIT, "task_visibility_timeout_ms": 300, "worker_announce_after_ms": 10_000}
    async with engine(redis_url, **settings) as e:
        wf = await e.register("retry-store", [node("make", "big")])
        (eid,) = await e.start(wf, {"n": 1})
        ran = asyncio.Event()
        async with payload_store(away) as unreachable, running(e, recorder(seen, ran=ran), payloads=unreachable):
            await asyncio.wait_for(ran.wait(), timeout=20)
        # The worker has stopped, so what it ran is settled: neither the node's start nor its result is recorded.
        state = await e.store.load(eid)
        assert state is not None and state.status is ExecutionStatus.RUNNING
        assert state.node(NodeId("make")).status is NodeStatus.QUEUED
        assert not [x for x in await e.store.read_log(eid) if isinstance(x.event, NodeCompleted)]
        seen.clear()
        async with payload_store(database_url) as store, running(e, recorder(seen), payloads=store):
            (state,) = await e.wait_finished([eid])
        assert seen == {"make": {"n": 1}}  # run again, by the reclaim
        assert state.status is ExecutionStatus.COMPLETED and state.output == BIG_REF
        assert await stored_ids(database_url) == [BIG_REF["$spane.payload"]]


async def test_a_reference_to_a_lost_payload_fails_the_node_for_good(redis_url: str, database_url: str) -> None:
    seen: dict[str, Any] = {}
    lost = reference(payload_id(b'"never stored"'), 14)
    async with engine(redis_url, payload_inline_max=LIMIT) as e, payload_store(database_url) as store:
        wf = await e.register("lost", [node("use", "see", retryPolicy={"maxAttempts": 3})])
        (eid,) = await e.start(wf, {"data": lost})
        async with running(e, recorder(seen), payloads=store):
            (state,) = await e.wait_finished([eid])
        assert seen == {}  # the executor never ran
        use = state.node(NodeId("use"))
        assert (state.status, use.status, use.attempt) == (ExecutionStatus.FAILED, NodeStatus.DEAD_LETTERED, 1)
        assert use.error is not None and use.error.type == "PayloadMissing"
