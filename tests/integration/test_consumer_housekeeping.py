"""Consumers of processes gone for good leave their groups; one still holding entries, or recently seen, stays."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from spane_core.store.streams import forget_gone_consumers

from .api_support import unique

pytestmark = pytest.mark.integration


async def names(redis: Redis, stream: str) -> set[str]:
    return {c["name"].decode() for c in await redis.xinfo_consumers(stream, "g")}


async def test_idle_consumers_with_nothing_pending_are_forgotten(redis: Redis) -> None:
    stream = unique("housekeeping")
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    for _ in range(4):
        await redis.xadd(stream, {"t": "x"})

    async def take(consumer: str, ack: bool) -> None:
        reply: Any = await redis.xreadgroup("g", consumer, {stream: ">"}, count=1)
        if ack:
            await redis.xack(stream, "g", reply[0][1][0][0])

    await take("gone-done", ack=True)  # read and acked: holds nothing
    await take("gone-holding", ack=False)  # died holding an entry
    await take("me", ack=True)  # the caller itself
    await asyncio.sleep(0.05)
    await take("alive", ack=True)  # seen just now

    gone = await forget_gone_consumers(redis, stream, "g", keep="me", idle_ms=40)

    assert gone == ["gone-done"]
    assert await names(redis, stream) == {"gone-holding", "me", "alive"}
    # The entry of the one that died holding it is still pending, for a reclaim to take over.
    assert (await redis.xpending(stream, "g"))["pending"] == 1


async def test_a_missing_stream_or_group_is_nothing_to_do(redis: Redis) -> None:
    assert await forget_gone_consumers(redis, unique("no-such-stream"), "g", keep="me") == []
