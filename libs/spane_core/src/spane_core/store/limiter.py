"""The shared limiters in Redis: circuit breakers, token buckets and concurrency limits that hold across every
worker, each check one Lua script over the ``{limits}`` slot (``admit.lua``, ``finish.lua``, ``reset_breaker.lua``).

A try of a node is named by its timer member (``execution|node|attempt``): a deferred try waits on a timer of that
name, so a limit that frees up (a slot, a probe, a closed breaker) wakes it by moving its timer to now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from spane_core.effects import parse_timer_member
from spane_core.keys import LimitKeys, for_execution
from spane_core.node_limits import NodeLimits
from spane_core.store.scripts import LuaScript, run_pipelined

Outcome = Literal["success", "failure", "none"]


@dataclass(frozen=True, slots=True)
class Held:
    """A limit refused the try: it may run at ``until`` (epoch ms) at the earliest."""

    until: int
    reason: str  # spane_core.deferral
    limit: str  # the breaker, bucket or node type that refused it


@dataclass(frozen=True, slots=True)
class BreakerView:
    name: str
    state: str  # closed, open, half_open
    failures: int
    successes: int
    open_until: int | None  # epoch ms: when an open breaker lets one probe through
    failure_threshold: int
    success_threshold: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class BucketView:
    name: str
    max: int
    per_ms: int
    available: int  # tokens that a try could take now
    reserved: int  # tries waiting for a turn they were given


class Limiter:
    def __init__(self, redis: Redis, partitions: int, *, hold_ms: int = 30_000, poll_ms: int = 1000) -> None:
        self.redis = redis
        self.partitions = partitions
        self.hold_ms = hold_ms  # how long a concurrency slot or a probe is held without a refresh (a dead worker's)
        self.poll_ms = poll_ms
        self._admit = LuaScript("admit")
        self._finish = LuaScript("finish")
        self._reset = LuaScript("reset_breaker")

    async def admit(self, tries: Sequence[tuple[str, NodeLimits]]) -> list[Held | None]:
        """For each (member, limits): None when the try may run now (it holds its slot and probe until
        ``finish``), else until when it must wait. One round trip for all."""
        if not tries:
            return []
        results = await run_pipelined(self.redis, self._admit, [self._admit_call(m, lim) for m, lim in tries])
        return [None if int(r[0]) == 1 else Held(int(r[1]), _text(r[2]), _text(r[3])) for r in results]

    def _admit_call(self, member: str, limits: NodeLimits) -> tuple[list[str], list[Any]]:
        b, c = limits.breaker, limits.concurrency
        breaker = b.name if b is not None else ""
        conc = c.name if c is not None else ""
        keys = [
            LimitKeys.stats, LimitKeys.breakers, LimitKeys.buckets, LimitKeys.concurrency,
            LimitKeys.breaker(breaker), LimitKeys.breaker_waiting(breaker),
            LimitKeys.holders(conc), LimitKeys.concurrency_waiting(conc),
        ]  # fmt: skip
        args: list[Any] = [
            member, self.hold_ms, self.poll_ms,
            breaker, *((b.failure_threshold, b.success_threshold, b.timeout_ms) if b else (0, 0, 0)),
            conc, c.limit if c else 0, len(limits.buckets),
        ]  # fmt: skip
        for bucket in limits.buckets:
            keys += [LimitKeys.bucket(bucket.name), LimitKeys.reserved(bucket.name)]
            args += [bucket.name, bucket.max, bucket.per_ms]
        return keys, args

    async def finish(self, tries: Sequence[tuple[str, NodeLimits, Outcome]]) -> None:
        """The admitted tries ended: free their slots, count their outcomes, and wake whom that lets through."""
        if not tries:
            return
        calls = []
        for member, limits, outcome in tries:
            breaker = limits.breaker.name if limits.breaker is not None else ""
            conc = limits.concurrency.name if limits.concurrency is not None else ""
            keys = [
                LimitKeys.stats, LimitKeys.breaker(breaker), LimitKeys.breaker_waiting(breaker),
                LimitKeys.holders(conc), LimitKeys.concurrency_waiting(conc),
            ]  # fmt: skip
            calls.append((keys, [member, outcome, breaker, conc]))
        woken = await run_pipelined(self.redis, self._finish, calls)
        await self.wake([_text(m) for members in woken for m in members])

    async def refresh(self, tries: Sequence[tuple[str, NodeLimits]]) -> None:
        """Keep the concurrency slots of tries still running from expiring."""
        now_ms = await self._now()
        pipe = self.redis.pipeline(transaction=False)
        for member, limits in tries:
            if limits.concurrency is not None:
                pipe.zadd(LimitKeys.holders(limits.concurrency.name), {member: now_ms + self.hold_ms}, xx=True)
        await pipe.execute()

    async def wake(self, members: Sequence[str]) -> None:
        """Move the timers of these deferred tries to now (only those that still exist, and only earlier)."""
        if not members:
            return
        now_ms = await self._now()
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            try:
                execution_id, _node, _attempt = parse_timer_member(member)
            except ValueError:
                continue
            pipe.zadd(for_execution(execution_id, self.partitions).timers, {member: now_ms}, xx=True, lt=True)
        await pipe.execute()

    async def reset_breaker(self, name: str) -> bool:
        """Close breaker ``name`` and wake the tries it deferred; False when there is no such breaker."""
        keys = [LimitKeys.stats, LimitKeys.breakers, LimitKeys.breaker(name), LimitKeys.breaker_waiting(name)]
        waiting = await self._reset(self.redis, keys, [name])
        if waiting is None:
            return False
        await self.wake([_text(m) for m in waiting])
        return True

    async def breakers(self) -> list[BreakerView]:
        names = sorted(_text(n) for n in await self.redis.smembers(LimitKeys.breakers))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(LimitKeys.breaker(name))
        views = []
        for name, raw in zip(names, await pipe.execute(), strict=True):
            h = {_text(k): _text(v) for k, v in raw.items()}
            state = h.get("state") or "closed"
            views.append(
                BreakerView(
                    name=name,
                    state=state,
                    failures=_int(h.get("failures")),
                    successes=_int(h.get("successes")),
                    open_until=_int(h.get("openUntil")) if state == "open" else None,
                    failure_threshold=_int(h.get("failureThreshold")),
                    success_threshold=_int(h.get("successThreshold")),
                    timeout_ms=_int(h.get("timeoutMs")),
                )
            )
        return views

    async def buckets(self) -> list[BucketView]:
        names = sorted(_text(n) for n in await self.redis.smembers(LimitKeys.buckets))
        now_ms = await self._now()
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(LimitKeys.bucket(name))
            pipe.zcard(LimitKeys.reserved(name))
        answers = await pipe.execute()
        views = []
        for i, name in enumerate(names):
            h = {_text(k): _text(v) for k, v in answers[2 * i].items()}
            max_, per_ms = _int(h.get("max")), _int(h.get("perMs"))
            tat = max(float(h.get("tat") or 0), now_ms)
            # GCRA: each token pushes the theoretical arrival time one interval later, and a try may take one
            # while that time is at most perMs ahead.
            available = int((now_ms + per_ms - tat) * max_ / per_ms) if max_ and per_ms else 0
            views.append(BucketView(name, max_, per_ms, max(0, min(max_, available)), int(answers[2 * i + 1])))
        return views

    async def stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(LimitKeys.stats)
        return {_text(k): int(v) for k, v in raw.items()}

    async def _now(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: str | None) -> int:
    return int(float(value)) if value else 0
