"""The timer loop against a real Redis: due timers fire once, even with schedulers racing."""

from __future__ import annotations

import asyncio

import pytest
from spane_core.commands import Fail, MarkStarted
from spane_core.events import ErrorInfo, NodeQueued
from spane_core.ids import NodeId
from spane_core.keys import for_execution
from spane_core.state import NodeStatus
from spane_core.store.executions import Transition, now_ms
from spane_scheduler.timers import TimerLoop

from .worker_support import engine

pytestmark = pytest.mark.integration


async def test_racing_schedulers_fire_each_due_timer_once(redis_url: str) -> None:
    async with engine(redis_url) as e:
        policy = {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 10}}
        wf = await e.register("timers", [{"id": "a", "type": "transform", "retryPolicy": policy}])
        ids = await e.start(wf, {}, count=50)
        for eid in ids:  # the first try of each fails: a retry timer is set
            state = await e.store.load(eid)
            assert state is not None
            started = await e.store.apply(
                Transition(eid, [MarkStarted(NodeId("a"), state.node(NodeId("a")).queued_seq)])
            )
            assert started.state is not None
            lease = started.state.node(NodeId("a")).lease
            await e.store.apply(Transition(eid, [Fail(NodeId("a"), lease, ErrorInfo(message="x"))]))
        timers = for_execution(ids[0], 1).timers
        assert await e.redis.zcard(timers) == 50

        loops = [TimerLoop(e.store, 1, 10) for _ in range(4)]
        later = now_ms() + 1000
        await asyncio.gather(*(loop.fire_due(for_execution(ids[0], 1), later) for loop in loops))

        assert await e.redis.zcard(timers) == 0
        for state in await e.store.load_many(ids):
            assert state is not None
            assert state.node(NodeId("a")).status is NodeStatus.QUEUED
            assert state.node(NodeId("a")).attempt == 2
            queued = [
                env.event for env in await e.store.read_log(state.execution_id) if isinstance(env.event, NodeQueued)
            ]
            assert [q.attempt for q in queued] == [1, 2]


async def test_a_timer_of_a_missing_execution_is_dropped(redis_url: str) -> None:
    async with engine(redis_url) as e:
        timers = for_execution("gone", 1).timers
        await e.redis.zadd(timers, {"gone|a|1": 1})
        assert await TimerLoop(e.store, 1, 10).fire_due(for_execution("gone", 1)) == 1
        assert await e.redis.zcard(timers) == 0
