"""The store's snapshot cache: two processes committing to one execution stay correct.

Each store stands for one worker process. A snapshot cached by one goes stale when the other commits; the commit
script's version check must refuse it, and a decision to do nothing must never be made on it.
"""

from __future__ import annotations

from typing import cast

import msgspec
import pytest
from redis.asyncio import Redis
from spane_core.commands import Complete, MarkStarted, Start
from spane_core.definition import Graph, Workflow, WorkflowDefinition
from spane_core.errors import InternalError
from spane_core.events import NodeCompleted, NodeStarted
from spane_core.ids import ExecutionId, NodeId, WorkflowId, new_execution_id
from spane_core.state import ExecutionStatus, NodeStatus, fold
from spane_core.store.executions import ExecutionStore, Transition, now_ms
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry

pytestmark = pytest.mark.integration

CHAIN = {
    "id": "cache-chain",
    "name": "chain",
    "nodes": [
        {"id": "a", "type": "transform", "outputs": ["b"]},
        {"id": "b", "type": "transform", "outputs": ["c"]},
        {"id": "c", "type": "transform"},
    ],
}


async def _setup(redis: Redis) -> tuple[ExecutionStore, ExecutionStore, Workflow]:
    registry = WorkflowRegistry(redis)
    version, _ = await registry.register(msgspec.convert(CHAIN, WorkflowDefinition), now_ms())
    workflow = await registry.get(WorkflowId("cache-chain"), version)
    return redis_execution_store(redis, registry), redis_execution_store(redis, registry), workflow


async def _run(store: ExecutionStore, eid: ExecutionId, node: str) -> None:
    state = await store.load(eid)
    assert state is not None
    outcome = await store.apply(Transition(eid, [MarkStarted(NodeId(node), state.node(NodeId(node)).queued_seq)]))
    assert any(isinstance(e.event, NodeStarted) for e in outcome.events), f"{node} did not start"
    assert outcome.state is not None
    lease = outcome.state.node(NodeId(node)).lease
    outcome = await store.apply(Transition(eid, [Complete(NodeId(node), lease, output=node)]))
    assert any(isinstance(e.event, NodeCompleted) for e in outcome.events), f"{node} did not complete"


async def test_a_stale_cached_snapshot_is_refused_and_decided_again(redis: Redis) -> None:
    one, two, workflow = await _setup(redis)
    eid = new_execution_id()
    await one.apply(Transition(eid, [Start(eid, {"x": 1})], workflow=workflow))
    await _run(one, eid, "a")  # `one` now caches the snapshot in which b is queued
    await _run(two, eid, "b")  # `two` moves the execution on: c is queued
    # `one` is handed c's task while its cache still says c is pending: it must start it, not drop it as stale.
    await _run(one, eid, "c")
    state = await one.load(eid)
    assert state is not None and state.status is ExecutionStatus.COMPLETED
    assert [state.node(NodeId(n)).status for n in "abc"] == [NodeStatus.COMPLETED] * 3
    log = await one.read_log(eid)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))


async def test_a_stale_result_is_still_discarded_through_the_cache(redis: Redis) -> None:
    one, two, workflow = await _setup(redis)
    eid = new_execution_id()
    await one.apply(Transition(eid, [Start(eid, None)], workflow=workflow))
    state = await one.load(eid)
    assert state is not None
    first = await one.apply(Transition(eid, [MarkStarted(NodeId("a"), state.node(NodeId("a")).queued_seq)]))
    assert first.state is not None
    old_lease = first.state.node(NodeId("a")).lease
    # The task is reclaimed by the other process, which restarts the node under a new lease.
    second = await two.apply(Transition(eid, [MarkStarted(NodeId("a"), state.node(NodeId("a")).queued_seq)]))
    assert second.state is not None and second.state.node(NodeId("a")).lease != old_lease
    late = await one.apply(Transition(eid, [Complete(NodeId("a"), old_lease, output="late")]))
    assert late.events == []
    current = await one.load(eid)
    assert current is not None and current.node(NodeId("a")).status is NodeStatus.RUNNING


async def test_the_cache_holds_at_most_its_byte_budget(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from spane_core.store import executions

    monkeypatch.setattr(executions, "CACHE_BYTES", 4_000)
    one, _, workflow = await _setup(redis)
    ids = [new_execution_id() for _ in range(20)]
    for eid in ids:
        await one.apply(Transition(eid, [Start(eid, {"blob": "x" * 1_000})], workflow=workflow))
    assert 0 < one._cache_bytes <= 4_000
    assert 1 <= len(one._cache) <= 4
    assert list(one._cache)[-1] == ids[-1]  # the most recent stays
    # Executions that fell out of the cache are read from Redis again, and go on as before.
    await _run(one, ids[0], "a")


class _Buggy(Workflow):
    """A workflow on which the rules fail, as a bug in them would."""

    @property
    def graph(self) -> Graph:
        raise RuntimeError("a bug in the rules")


class _BrokenFor:
    """A workflow source that hands out one workflow as ``_Buggy``."""

    def __init__(self, registry: WorkflowRegistry, broken: WorkflowId) -> None:
        self.registry = registry
        self.broken = broken

    async def get(self, workflow_id: WorkflowId, version: int | None = None) -> Workflow:
        workflow = await self.registry.get(workflow_id, version)
        return _Buggy(workflow.definition, workflow.version) if workflow_id == self.broken else workflow


async def test_a_bug_deciding_on_one_execution_fails_only_its_transition(redis: Redis) -> None:
    registry = WorkflowRegistry(redis)
    starter = redis_execution_store(redis, registry)
    leases: dict[ExecutionId, str] = {}
    for workflow_id in ("bug-good", "bug-bad"):
        version, _ = await registry.register(
            msgspec.convert({**CHAIN, "id": workflow_id}, WorkflowDefinition), now_ms()
        )
        workflow = await registry.get(WorkflowId(workflow_id), version)
        eid = new_execution_id()
        await starter.apply(Transition(eid, [Start(eid, input=1)], workflow=workflow))
        state = await starter.load(eid)
        assert state is not None
        started = await starter.apply(Transition(eid, [MarkStarted(NodeId("a"), state.node(NodeId("a")).queued_seq)]))
        assert started.state is not None
        leases[eid] = started.state.node(NodeId("a")).lease
    good, bad = leases

    store = redis_execution_store(redis, _BrokenFor(registry, WorkflowId("bug-bad")))
    outcomes = await store.transact(
        [Transition(e, [Complete(NodeId("a"), lease, output=1)]) for e, lease in leases.items()]
    )

    by_id = {o.execution_id: o for o in outcomes}
    assert by_id[good].error is None
    assert NodeCompleted in [type(e.event) for e in by_id[good].events]
    assert isinstance(by_id[bad].error, InternalError)
    assert by_id[bad].events == []
    state = await store.load(bad)
    assert state is not None and state.node(NodeId("a")).status is NodeStatus.RUNNING  # nothing half-applied


async def test_a_large_execution_rewrites_its_snapshot_now_and_then_and_stale_caches_catch_up_from_the_log(
    redis: Redis,
) -> None:
    links = [f"n{i:02d}" for i in range(40)]  # 40 nodes: the snapshot is rewritten every 5 events
    nodes = [{"id": n, "type": "transform", "outputs": links[i + 1 : i + 2]} for i, n in enumerate(links)]
    registry = WorkflowRegistry(redis)
    definition = msgspec.convert({"id": "cache-long", "name": "long", "nodes": nodes}, WorkflowDefinition)
    workflow = await registry.get(WorkflowId("cache-long"), (await registry.register(definition, now_ms()))[0])
    stores = [redis_execution_store(redis, registry), redis_execution_store(redis, registry)]
    eid = new_execution_id()
    outcome = await stores[0].apply(Transition(eid, [Start(eid, {"x": 1})], workflow=workflow))
    keys = stores[0].keys(eid)
    lagging = 0
    for i, node in enumerate(links):
        store = stores[i % 2]  # two workers taking turns: each one's cached state is stale by the other's commits
        assert outcome.state is not None
        queued = outcome.state.node(NodeId(node)).queued_seq  # what the node's task says
        outcome = await store.apply(Transition(eid, [MarkStarted(NodeId(node), queued)]))
        assert outcome.state is not None, node
        lease = outcome.state.node(NodeId(node)).lease
        outcome = await store.apply(Transition(eid, [Complete(NodeId(node), lease, output={"x": 1})]))
        assert any(isinstance(e.event, NodeCompleted) for e in outcome.events), node
        v, sv = cast(list[bytes], await redis.hmget(keys.snapshot(eid), ["v", "sv"]))
        lagging += int(sv) < int(v)
    assert lagging > len(links) // 2  # most commits left the stored snapshot behind the log
    log = await stores[1].read_log(eid)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    (final,) = await stores[1].load_many([eid])
    assert final is not None and final.status is ExecutionStatus.COMPLETED
    assert final == fold(log)
