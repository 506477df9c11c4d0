"""The worker and the scheduler against a real Redis: workflows run end to end, in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from spane_core import codec, sdk
from spane_core.commands import Complete, MarkStarted, Pause, Resume
from spane_core.ids import NodeId
from spane_core.keys import WORKER_GROUP, for_execution
from spane_core.sdk import ExecutorRegistry, NodeContext, NodeResult, NonRetryableError
from spane_core.state import ExecutionStatus, NodeStatus
from spane_core.store.executions import Transition

from .worker_support import Engine, engine, running

pytestmark = pytest.mark.integration


def node(node_id: str, type: str = "transform", inputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type, "inputs": inputs or [], **extra}


def statuses(state: Any) -> dict[str, str]:
    return {str(k): str(v.status) for k, v in state.nodes.items()}


async def test_a_chain_passes_each_output_to_the_next(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register(
            "chain",
            [
                node("a", config={"set": {"a": 1}}),
                node("b", inputs=["a"], config={"set": {"b": 2}}),
                node("c", inputs=["b"], config={"expression": "{sum: sum([a, b])}"}),
            ],
        )
        (eid,) = await e.start(wf, {"x": 0})
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {"sum": 3}
        await e.replayed(state)


async def test_a_diamond_joins_both_branches(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register(
            "diamond",
            [
                node("start"),
                node("left", inputs=["start"], config={"set": {"side": "l"}}),
                node("right", inputs=["start"], config={"set": {"side": "r"}}),
                node("join", inputs=["left", "right"]),
            ],
        )
        (eid,) = await e.start(wf, {"n": 1})
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {"left": {"n": 1, "side": "l"}, "right": {"n": 1, "side": "r"}}
        assert await e.node_events(eid, "node.completed") in (
            ["start", "left", "right", "join"],
            ["start", "right", "left", "join"],
        )
        await e.replayed(state)


async def test_a_condition_runs_one_branch_and_skips_the_other(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register(
            "branch",
            [
                node("check", "condition", config={"expression": "amount > `100`", "trueBranch": "big",
                                                   "falseBranch": "small"}),
                node("big", inputs=["check"], config={"set": {"size": "big"}}),
                node("small", inputs=["check"], config={"set": {"size": "small"}}),
                node("after-small", inputs=["small"]),
            ],
        )  # fmt: skip
        big, small = await e.start(wf, {"amount": 500}) + await e.start(wf, {"amount": 5})
        async with running(e):
            s_big, s_small = await e.wait_finished([big, small])
        assert statuses(s_big) == {
            "check": "completed",
            "big": "completed",
            "small": "skipped",
            "after-small": "skipped",
        }
        assert s_big.output == {"big": {"amount": 500, "size": "big"}}
        assert statuses(s_small) == {
            "check": "completed", "small": "completed", "after-small": "completed", "big": "skipped"
        }  # fmt: skip
        assert s_small.output == {"after-small": {"amount": 5, "size": "small"}}
        await e.replayed(s_big)
        await e.replayed(s_small)


async def test_a_fan_out_of_100_joins_into_one_node(redis_url: str) -> None:
    async with engine(redis_url) as e:
        fan = [node(f"n{i}", inputs=["root"], config={"set": {"i": i}}) for i in range(100)]
        wf = await e.register("fan", [node("root"), *fan, node("join", inputs=[f"n{i}" for i in range(100)])])
        (eid,) = await e.start(wf, {})
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {f"n{i}": {"i": i} for i in range(100)}
        completed = await e.node_events(eid, "node.completed")
        assert sorted(completed) == sorted(["root", "join", *(f"n{i}" for i in range(100))])
        await e.replayed(state)


async def test_a_failing_try_is_retried_after_its_backoff(redis_url: str) -> None:
    tries: list[int] = []

    async def flaky(ctx: NodeContext) -> Any:
        tries.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return {"attempt": ctx.attempt, "key": ctx.idempotency_key}

    registry = ExecutorRegistry()
    registry.register("flaky", flaky)
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        policy = {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 10}}
        wf = await e.register("retry", [node("f", "flaky", retryPolicy=policy)])
        (eid,) = await e.start(wf)
        async with running(e, registry):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {"attempt": 2, "key": f"{eid}:f:2"}
        assert tries == [1, 2]
        failed = [env.event for env in await e.store.read_log(eid) if env.type == "node.failed"]
        assert len(failed) == 1
        assert failed[0].error.type == "RuntimeError"  # type: ignore[union-attr]
        assert failed[0].error.message == "first try fails"  # type: ignore[union-attr]
        await e.replayed(state)


async def test_a_non_retryable_error_dead_letters_the_node_and_fails_the_execution(redis_url: str) -> None:
    async def broken(ctx: NodeContext) -> Any:
        raise NonRetryableError("the card was declined")

    registry = ExecutorRegistry()
    registry.register("broken", broken)
    async with engine(redis_url) as e:
        wf = await e.register("dlq", [node("pay", "broken"), node("ship", inputs=["pay"])])
        (eid,) = await e.start(wf)
        async with running(e, registry):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.FAILED
        assert state.node(NodeId("pay")).status is NodeStatus.DEAD_LETTERED
        assert state.node(NodeId("pay")).attempt == 1  # no retries
        assert state.node(NodeId("ship")).status is NodeStatus.PENDING
        assert state.error is not None and "the card was declined" in state.error.message
        assert state.error.type == "NonRetryableError"
        await e.replayed(state)


async def test_continue_on_fail_gives_the_child_the_error_object(redis_url: str) -> None:
    async def broken(ctx: NodeContext) -> Any:
        raise ValueError("bad input")

    registry = ExecutorRegistry()
    registry.register("broken", broken)
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        policy = {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}, "continueOnFail": True}
        wf = await e.register("cof", [node("a", "broken", retryPolicy=policy), node("b", inputs=["a"])])
        (eid,) = await e.start(wf)
        async with running(e, registry):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.node(NodeId("a")).status is NodeStatus.FAILED
        assert state.output == {
            "error": {"message": "bad input", "type": "ValueError"},
            "_metadata": {"continuedOnFail": True, "attempts": 2},
        }
        await e.replayed(state)


async def test_a_delay_node_waits_for_the_scheduler(redis_url: str) -> None:
    async with engine(redis_url, scheduler_interval_ms=10) as e:
        wf = await e.register("delay", [node("a"), node("wait", "delay", inputs=["a"], config={"ms": 200}),
                                        node("b", inputs=["wait"], config={"set": {"done": True}})])  # fmt: skip
        (eid,) = await e.start(wf, {"v": 1})
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {"v": 1, "done": True}
        waited = state.node(NodeId("wait"))
        assert waited.finished_at is not None and waited.started_at is not None
        assert waited.finished_at - waited.started_at >= 200
        assert await e.redis.zcard(for_execution(eid, 1).timers) == 0
        await e.replayed(state)


async def test_a_node_over_its_timeout_fails(redis_url: str) -> None:
    async def sleepy(ctx: NodeContext) -> Any:
        await asyncio.sleep(5)

    registry = ExecutorRegistry()
    registry.register("sleepy", sleepy)
    async with engine(redis_url) as e:
        wf = await e.register("timeout", [node("s", "sleepy", timeoutMs=50, retryPolicy={"maxAttempts": 1})])
        (eid,) = await e.start(wf)
        async with running(e, registry):
            (state,) = await e.wait_finished([eid], within=3)
        assert state.status is ExecutionStatus.FAILED
        error = state.node(NodeId("s")).error
        assert error is not None and error.type == "NodeTimeout" and "50 ms" in error.message


@sdk.executor("test-enrich-user")
async def enrich_user(ctx: NodeContext) -> NodeResult:
    return NodeResult({**ctx.input, "vip": ctx.config.get("vip", False)}, next_nodes=["notify"])


async def test_a_custom_executor_registered_with_the_decorator_runs_and_picks_next_nodes(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register(
            "custom",
            [
                node("enrich", "test-enrich-user", config={"vip": True}),
                node("notify", inputs=["enrich"]),
                node("audit", inputs=["enrich"]),
            ],
        )
        (eid,) = await e.start(wf, {"user": "ada"})
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert statuses(state) == {"enrich": "completed", "notify": "completed", "audit": "skipped"}
        assert state.output == {"notify": {"user": "ada", "vip": True}}


async def test_an_unknown_node_type_fails_without_retries(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register("unknown", [node("x", "no-such-type")])
        (eid,) = await e.start(wf)
        async with running(e):
            (state,) = await e.wait_finished([eid])
        assert state.status is ExecutionStatus.FAILED
        assert state.node(NodeId("x")).attempt == 1
        assert state.error is not None and "no executor for node type 'no-such-type'" in state.error.message


# -- the delivery guarantees around a dead worker ------------------------------------------------------------


async def _take(e: Engine, redis: Redis, consumer: str, eid: str, claim: bool = False) -> tuple[str, str]:
    """Take the execution's one task as ``consumer`` (read, or claim) and mark it started: (entry id, lease)."""
    stream = for_execution(eid, 1).tasks
    reply: Any
    if claim:
        reply = await redis.xautoclaim(stream, WORKER_GROUP, consumer, 0, "0-0")
        entries = reply[1]
    else:
        reply = await redis.xreadgroup(WORKER_GROUP, consumer, {stream: ">"}, count=1)
        entries = reply[0][1]
    entry_id, fields = entries[0]
    task = codec.decode_task(fields[b"t"])
    outcome = await e.store.apply(Transition(task.execution_id, [MarkStarted(task.node_id, task.queued_seq)]))
    assert outcome.state is not None
    return entry_id.decode(), outcome.state.node(task.node_id).lease


async def test_a_stale_result_does_not_acknowledge_the_task_that_a_reclaim_restarted(redis_url: str) -> None:
    async with engine(redis_url) as e:
        wf = await e.register("fence", [node("a")])
        (eid,) = await e.start(wf)
        stream = for_execution(eid, 1).tasks
        await e.redis.xgroup_create(stream, WORKER_GROUP, id="0", mkstream=True)
        entry, old_lease = await _take(e, e.redis, "slow-worker", eid)
        same_entry, new_lease = await _take(e, e.redis, "reclaimer", eid, claim=True)
        assert same_entry == entry and new_lease != old_lease

        late = Transition(eid, [Complete(NodeId("a"), old_lease, "late")], ack_if_recorded=[entry])
        assert (await e.store.apply(late)).events == []  # discarded by the lease fence...
        assert (await e.redis.xpending(stream, WORKER_GROUP))["pending"] == 1  # ...and the task is still pending

        done = Transition(eid, [Complete(NodeId("a"), new_lease, "on time")], ack_if_recorded=[entry])
        assert [env.type for env in (await e.store.apply(done)).events] == ["node.completed", "execution.completed"]
        assert (await e.redis.xpending(stream, WORKER_GROUP))["pending"] == 0


async def test_a_node_whose_worker_died_while_paused_runs_again_after_resume(redis_url: str) -> None:
    async with engine(redis_url, task_visibility_timeout_ms=200) as e:
        wf = await e.register("paused", [node("a", config={"set": {"ran": True}})])
        (eid,) = await e.start(wf, {})
        await e.redis.xgroup_create(for_execution(eid, 1).tasks, WORKER_GROUP, id="0", mkstream=True)
        await _take(e, e.redis, "dies-now", eid)  # started, and its worker never reports
        await e.store.apply(Transition(eid, [Pause()]))
        async with running(e):
            await asyncio.sleep(0.6)  # reclaimed while paused: it must stay pending, not be dropped
            state = await e.store.load(eid)
            assert state is not None and state.node(NodeId("a")).status is NodeStatus.RUNNING
            await e.store.apply(Transition(eid, [Resume()]))
            (state,) = await e.wait_finished([eid], within=5)
        assert state.status is ExecutionStatus.COMPLETED
        assert state.output == {"ran": True}
        assert await e.node_events(eid, "node.completed") == ["a"]


async def test_many_executions_complete_with_one_result_per_node(redis_url: str) -> None:
    async with engine(redis_url, worker_batch=50) as e:
        wf = await e.register(
            "many", [node("a"), node("b", inputs=["a"]), node("c", inputs=["a"]), node("d", inputs=["b", "c"])]
        )
        ids = await e.start(wf, {"k": 1}, count=300)
        async with running(e):
            states = await e.wait_finished(ids, within=60)
        assert all(s.status is ExecutionStatus.COMPLETED for s in states)
        for eid in ids[:20]:
            assert sorted(await e.node_events(eid, "node.completed")) == ["a", "b", "c", "d"]
        assert (await e.redis.xpending(for_execution(ids[0], 1).tasks, WORKER_GROUP))["pending"] == 0
