"""History retention: executions finished longer ago than the retention are deleted everywhere, a batch at a time;
the others, and whatever is still running, are kept."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from spane_core import keys
from spane_core.claim_check import reference_id
from spane_core.errors import PayloadMissing
from spane_core.ids import ExecutionId
from spane_core.observe.metrics import Metrics
from spane_core.readmodel import migrate
from spane_core.rerun import rerun_execution
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.store.payloads import PayloadStore
from spane_projector import Projector
from spane_projector.prune import HistoryPruner

from .worker_support import Engine, engine, running

pytestmark = pytest.mark.integration

DAY_S = 24 * 3600
FAST = {"maxAttempts": 1}


async def broken(ctx: NodeContext) -> Any:
    raise RuntimeError("never")


async def rows(pool: asyncpg.Pool, table: str) -> set[str]:
    return {r[0] for r in await pool.fetch(f"SELECT DISTINCT execution_id FROM {table}")}


async def projected(pool: asyncpg.Pool) -> int:
    try:
        return len(await rows(pool, "executions"))
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0


async def project(redis: Any, pool: asyncpg.Pool, count: int) -> None:
    stop = asyncio.Event()
    projector = Projector(redis, pool, consumer="p", block_ms=50)
    projecting = asyncio.create_task(projector.run(stop))
    try:
        deadline = time.monotonic() + 20
        while await projector.backlog() or await projected(pool) < count:
            assert time.monotonic() < deadline and not projecting.done(), "the projector did not catch up"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await projecting


async def test_finished_executions_past_the_retention_are_deleted_everywhere(redis_url: str, database_url: str) -> None:
    registry = ExecutorRegistry()
    registry.register("broken", broken)
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        done = await e.register("done", [
            {"id": "a", "type": "transform", "outputs": ["b"]}, {"id": "b", "type": "transform"},
        ])  # fmt: skip
        dead = await e.register("dead", [{"id": "x", "type": "broken", "retryPolicy": FAST}])
        slow = await e.register("slow", [{"id": "wait", "type": "delay", "config": {"seconds": 3600}}])
        finished = await e.start(done, {"n": 1}, count=3) + await e.start(dead, {})
        (waiting,) = await e.start(slow, {})
        async with running(e, registry):
            await e.wait_finished(finished)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        try:
            await project(e.redis, pool, len(finished) + 1)
            assert await rows(pool, "dead_letters") == set(finished[-1:])

            now = time.time()
            kept = HistoryPruner(pool, e.redis, e.settings.partitions, DAY_S, clock=lambda: now)
            assert await kept.prune_once() == 0  # finished seconds ago: within the retention

            metrics = Metrics()
            later = HistoryPruner(
                pool, e.redis, e.settings.partitions, DAY_S, batch=3, clock=lambda: now + DAY_S + 5, metrics=metrics
            )
            assert await later.prune_once() == 3  # a batch at a time, oldest first
            assert await later.prune_once() == 1
            assert await later.prune_once() == 0
            assert b"spane_history_pruned_executions_total 4.0" in metrics.render()

            for table in ("executions", "node_runs", "event_runs", "dead_letters"):
                assert await rows(pool, table) & set(finished) == set(), table
            assert await rows(pool, "executions") == {waiting}  # still running: nothing to prune
            for eid in finished:
                k = keys.for_execution(eid, e.settings.partitions)
                assert not await e.redis.exists(k.snapshot(eid), k.log(eid))  # a failed one's too
            k = keys.for_execution(waiting, e.settings.partitions)
            assert await e.redis.exists(k.snapshot(waiting))
        finally:
            await pool.close()


async def test_pruning_collects_the_payloads_that_only_pruned_executions_referenced(
    redis_url: str, database_url: str
) -> None:
    alone, shared = {"blob": "a" * 8_000}, {"blob": "s" * 8_000}  # over the inline limit: stored aside
    async with engine(redis_url, scheduler_interval_ms=10, payload_inline_max=1_024) as e:
        done = await e.register("done", [{"id": "a", "type": "transform"}])
        slow = await e.register("slow", [{"id": "wait", "type": "delay", "config": {"seconds": 3600}}])
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        store = PayloadStore(pool, inline_max=1_024, cache_bytes=1 << 20, prepare=migrate)
        try:
            alone_ref, shared_ref = await store.store(alone), await store.store(shared)
            finished = await e.start(done, alone_ref) + await e.start(done, shared_ref)
            (kept,) = await e.start(slow, shared_ref)  # still running: it keeps the shared payload
            async with running(e, ExecutorRegistry(), payloads=store):
                await e.wait_finished(finished)
            await project(e.redis, pool, 3)
            refs = {(r[0], r[1]) for r in await pool.fetch("SELECT payload_id, execution_id FROM payload_refs")}
            alone_id, shared_id = str(reference_id(alone_ref["blob"])), str(reference_id(shared_ref["blob"]))
            assert {(alone_id, finished[0]), (shared_id, finished[1]), (shared_id, kept)} <= refs

            now = time.time()
            pruner = HistoryPruner(pool, e.redis, e.settings.partitions, DAY_S, clock=lambda: now + DAY_S + 5)
            assert await pruner.prune_once() == 2 and pruner.collected == 1
            assert {r[0] for r in await pool.fetch("SELECT id FROM payloads")} == {shared_id}
            assert {(r[0], r[1]) for r in await pool.fetch("SELECT payload_id, execution_id FROM payload_refs")} == {
                (shared_id, kept)
            }
            # The execution that is kept still reads its input whole.
            reader = PayloadStore(pool, inline_max=1_024, cache_bytes=1 << 20)
            state = await e.store.load(kept)
            assert state is not None and await reader.resolve(state.input) == shared
        finally:
            await pool.close()


@contextlib.asynccontextmanager
async def one_finished_with(
    redis_url: str, database_url: str, value: Any
) -> AsyncIterator[tuple[Engine, asyncpg.Pool, PayloadStore, ExecutionId, Any]]:
    """One execution of a one-node workflow on ``value`` (stored aside), finished: the engine, a pool, the payload
    store, the execution and the stored value's reference."""
    async with engine(redis_url, scheduler_interval_ms=10, payload_inline_max=1_024) as e:
        done = await e.register("done", [{"id": "a", "type": "transform"}])
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        store = PayloadStore(pool, inline_max=1_024, cache_bytes=1 << 20, prepare=migrate)
        try:
            ref = await store.store(value)
            (execution_id,) = await e.start(done, ref)
            async with running(e, ExecutorRegistry(), payloads=store):
                await e.wait_finished([execution_id])
            yield e, pool, store, execution_id, ref
        finally:
            await pool.close()


async def test_a_payload_stored_again_since_the_cutoff_is_not_collected(redis_url: str, database_url: str) -> None:
    async with one_finished_with(redis_url, database_url, {"blob": "b" * 8_000}) as (e, pool, _, _, _):
        await project(e.redis, pool, 1)
        # Its execution is past the retention, but a process stored the same value lately (a new execution whose
        # reference the projector has not recorded yet may need it).
        now = time.time()
        pruner = HistoryPruner(pool, e.redis, e.settings.partitions, DAY_S, clock=lambda: now + DAY_S + 5)
        async with pool.acquire() as conn:  # stored again after the cutoff (now + 5 s)
            await conn.execute("UPDATE payloads SET stored_at = now() + interval '1 hour'")
        assert await pruner.prune_once() == 1 and pruner.collected == 0
        assert len(await pool.fetch("SELECT id FROM payloads")) == 1


async def test_a_rerun_keeps_the_payloads_it_reuses_from_collection_or_says_they_are_gone(
    redis_url: str, database_url: str
) -> None:
    async with one_finished_with(redis_url, database_url, {"blob": "r" * 8_000}) as (e, pool, store, earlier, ref):
        pid = str(reference_id(ref["blob"]))
        async with pool.acquire() as conn:
            await conn.execute("UPDATE payloads SET stored_at = now() - interval '2 days'")
        await rerun_execution(e.redis, e.workflows, e.store, store, earlier, from_node="a")
        async with pool.acquire() as conn:  # its input is referenced anew: touched
            assert await conn.fetchval("SELECT stored_at > now() - interval '1 hour' FROM payloads")
            await conn.execute("DELETE FROM payloads WHERE id = $1", pid)
        with pytest.raises(PayloadMissing, match=pid):
            await rerun_execution(e.redis, e.workflows, e.store, store, earlier)
