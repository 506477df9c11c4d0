"""The core's consumer group, against real Redis: what both the worker and the projector rely on."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from spane_core.store.connection import as_text
from spane_core.store.streams import ConsumerGroup

from .api_support import unique

pytestmark = pytest.mark.integration


async def add(redis: Redis, stream: str, task: bytes) -> str:
    return as_text(await redis.xadd(stream, {b"t": task}))


async def test_entries_written_before_the_group_existed_are_read_once_in_batches(redis: Redis) -> None:
    stream = unique("group")
    ids = [await add(redis, stream, str(i).encode()) for i in range(5)]
    group = ConsumerGroup(redis, "g", "me", [stream])
    await group.ensure_groups()
    await group.ensure_groups()  # an existing group stays as it is

    first = await group.read(stream, count=3, block_ms=None)
    rest = await group.read(stream, count=10, block_ms=None)

    assert [entry_id for entry_id, _ in first + rest] == ids
    assert first[0][1] == {b"t": b"0"}
    assert await group.read(stream, count=10, block_ms=None) == []
    assert [entry_id for entry_id, _ in await group.read(stream, count=10, block_ms=None, cursor="0")] == ids
    assert await group.backlog() == 5


async def test_a_group_deleted_under_a_reader_is_created_again(redis: Redis) -> None:
    stream = unique("group")
    group = ConsumerGroup(redis, "g", "me", [stream])
    await group.ensure_groups()
    await redis.delete(stream)

    assert await group.read(stream, count=10, block_ms=None) == []
    assert await group.reclaim(stream, idle_ms=0, count=10) == ("0-0", [])
    entry_id = await add(redis, stream, b"x")
    assert await group.read(stream, count=10, block_ms=None) == [(entry_id, {b"t": b"x"})]


async def test_reclaim_counts_deliveries_and_touch_keeps_an_entry_from_being_reclaimed(redis: Redis) -> None:
    stream = unique("group")
    mine = ConsumerGroup(redis, "g", "me", [stream])
    other = ConsumerGroup(redis, "g", "other", [stream])
    await mine.ensure_groups()
    held = await add(redis, stream, b"held")
    silent = await add(redis, stream, b"silent")
    await mine.read(stream, count=10, block_ms=None)
    await asyncio.sleep(0.06)
    await mine.touch(stream, [held])

    start, taken = await other.reclaim(stream, idle_ms=50, count=10)

    assert (start, [entry_id for entry_id, _ in taken]) == ("0-0", [silent])
    assert await other.deliveries(stream, [held, silent, "0-1"]) == [1, 2, 0]


async def test_ack_and_delete_leaves_nothing_pending_nor_in_the_stream(redis: Redis) -> None:
    stream = unique("group")
    group = ConsumerGroup(redis, "g", "me", [stream])
    await group.ensure_groups()
    kept = await add(redis, stream, b"kept")
    dropped = await add(redis, stream, b"dropped")
    await group.read(stream, count=10, block_ms=None)

    await group.ack(stream, [kept])
    await group.ack_and_delete(stream, [dropped])

    assert (await redis.xpending(stream, "g"))["pending"] == 0
    assert [as_text(entry_id) for entry_id, _ in await redis.xrange(stream) or []] == [kept]
