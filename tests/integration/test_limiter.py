"""The shared limiters' scripts against a real Redis: breakers, token buckets and concurrency limits."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from redis.asyncio import Redis
from spane_core.keys import LimitKeys, for_execution
from spane_core.node_limits import Breaker, Bucket, Concurrency, NodeLimits
from spane_core.store.limiter import Held, Limiter

pytestmark = pytest.mark.integration

BREAKER = NodeLimits(breaker=Breaker("flaky", failure_threshold=2, success_threshold=2, timeout_ms=300))


def member(i: int) -> str:
    return f"e{i}|n|1"


async def test_a_breaker_opens_after_the_threshold_half_opens_with_one_probe_and_closes(redis: Redis) -> None:
    limiter = Limiter(redis, 1, poll_ms=50)
    assert await limiter.admit([(member(1), BREAKER), (member(2), BREAKER)]) == [None, None]
    await limiter.finish([(member(1), BREAKER, "failure")])
    assert (await limiter.breakers())[0].state == "closed"
    await limiter.finish([(member(2), BREAKER, "failure")])
    (view,) = await limiter.breakers()
    assert (view.state, view.failures) == ("open", 2) and view.open_until is not None

    (held,) = await limiter.admit([(member(3), BREAKER)])
    assert isinstance(held, Held) and (held.reason, held.limit, held.until) == (
        "circuit-breaker",
        "flaky",
        view.open_until,
    )
    await asyncio.sleep(0.35)
    # The timeout passed: exactly one probe goes through, the others wait for it.
    verdicts = await limiter.admit([(member(i), BREAKER) for i in (3, 4, 5)])
    assert verdicts[0] is None and all(isinstance(v, Held) for v in verdicts[1:])
    assert (await limiter.breakers())[0].state == "half_open"
    await limiter.finish([(member(3), BREAKER, "success")])  # 1 of 2 successes: the next probe may go
    assert (await limiter.breakers())[0].state == "half_open"
    verdicts = await limiter.admit([(member(4), BREAKER), (member(5), BREAKER)])
    assert verdicts[0] is None and isinstance(verdicts[1], Held)  # still one probe at a time
    await limiter.finish([(member(4), BREAKER, "success")])
    (view,) = await limiter.breakers()
    assert (view.state, view.failures, view.open_until) == ("closed", 0, None)
    stats = await limiter.stats()
    assert stats["transitions|flaky|open"] == 1 and stats["transitions|flaky|half_open"] == 1
    assert stats["transitions|flaky|closed"] == 1 and stats["throttled|circuit-breaker|flaky"] >= 3


async def test_a_failed_probe_opens_the_breaker_again(redis: Redis) -> None:
    limiter = Limiter(redis, 1)
    one = NodeLimits(breaker=Breaker("b", failure_threshold=1, success_threshold=1, timeout_ms=100))
    await limiter.admit([(member(1), one)])
    await limiter.finish([(member(1), one, "failure")])
    await asyncio.sleep(0.15)
    assert await limiter.admit([(member(2), one)]) == [None]
    await limiter.finish([(member(2), one, "failure")])
    assert (await limiter.breakers())[0].state == "open"


async def test_reset_closes_a_breaker_and_moves_the_timers_of_the_nodes_it_deferred_to_now(redis: Redis) -> None:
    limiter = Limiter(redis, 1)
    one = NodeLimits(breaker=Breaker("b", failure_threshold=1, success_threshold=1, timeout_ms=60_000))
    await limiter.admit([(member(1), one)])
    await limiter.finish([(member(1), one, "failure")])
    (held,) = await limiter.admit([(member(2), one)])
    assert isinstance(held, Held)
    timers = for_execution("e2", 1).timers
    await redis.zadd(timers, {member(2): held.until})  # what the deferral's commit writes
    assert await limiter.reset_breaker("nope") is False
    assert await limiter.reset_breaker("b") is True
    assert (await limiter.breakers())[0].state == "closed"
    assert (await redis.zscore(timers, member(2)) or 0) < held.until
    assert await limiter.admit([(member(2), one)]) == [None]


async def test_a_bucket_lets_a_burst_through_then_reserves_later_turns_in_order(redis: Redis) -> None:
    limiter = Limiter(redis, 1)
    limits = NodeLimits(buckets=(Bucket("type:t", max=5, per_ms=1000),))
    verdicts = await limiter.admit([(member(i), limits) for i in range(8)])
    assert verdicts[:5] == [None] * 5
    later = [v for v in verdicts[5:] if isinstance(v, Held)]
    assert len(later) == 3 and all(v.reason == "rate-limit" and v.limit == "type:t" for v in later)
    gaps = [b.until - a.until for a, b in itertools.pairwise(later)]
    assert all(199 <= gap <= 201 for gap in gaps)  # one token every perMs / max
    (bucket,) = await limiter.buckets()
    assert (bucket.name, bucket.max, bucket.per_ms, bucket.available, bucket.reserved) == ("type:t", 5, 1000, 0, 3)
    # Coming back early keeps the turn; coming back on time is let through on it, without another token.
    (again,) = await limiter.admit([(member(5), limits)])
    assert isinstance(again, Held) and again.until == later[0].until
    seconds, micros = await redis.time()
    await asyncio.sleep((later[0].until - seconds * 1000 - micros // 1000) / 1000 + 0.01)
    assert await limiter.admit([(member(5), limits)]) == [None]
    assert (await limiter.buckets())[0].reserved == 2


async def test_a_concurrency_limit_holds_across_limiters_and_a_finished_try_wakes_the_next(redis: Redis) -> None:
    one, two = Limiter(redis, 1), Limiter(redis, 1)  # as two workers
    limits = NodeLimits(concurrency=Concurrency("slow", 2))
    assert await one.admit([(member(1), limits)]) == [None]
    assert await two.admit([(member(2), limits)]) == [None]
    (held,) = await two.admit([(member(3), limits)])
    assert isinstance(held, Held) and held.reason == "concurrency-limit"
    timers = for_execution("e3", 1).timers
    await redis.zadd(timers, {member(3): held.until})
    await one.finish([(member(1), limits, "success")])
    assert (await redis.zscore(timers, member(3)) or 0) < held.until  # woken
    assert await two.admit([(member(3), limits)]) == [None]
    assert await redis.zcard(LimitKeys.holders("slow")) == 2


async def test_a_concurrency_slot_of_a_dead_worker_expires(redis: Redis) -> None:
    limiter = Limiter(redis, 1, hold_ms=100)
    limits = NodeLimits(concurrency=Concurrency("slow", 1))
    assert await limiter.admit([(member(1), limits)]) == [None]
    assert isinstance((await limiter.admit([(member(2), limits)]))[0], Held)
    await asyncio.sleep(0.15)
    assert await limiter.admit([(member(2), limits)]) == [None]
