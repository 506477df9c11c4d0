"""Priority streams against real Redis: a worker's reader takes higher priorities first and starves none, and a
task committed at a priority lands in that priority's stream."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from spane_core.keys import WORKER_GROUP, PartitionKeys
from spane_core.store.streams import ConsumerGroup
from spane_worker.bands import PriorityReader

pytestmark = pytest.mark.integration


async def test_the_reader_takes_the_high_priority_tasks_first_without_starving_the_low_ones(redis: Redis) -> None:
    p = PartitionKeys(0)
    group = ConsumerGroup(redis, WORKER_GROUP, "reader", [b.tasks for b in p.bands()])
    await group.ensure_groups()
    low, high = p.at_priority(1), p.at_priority(10)
    for i in range(300):
        await redis.xadd(low.tasks, {b"t": f"low-{i}".encode()})
    for i in range(5):
        await redis.xadd(high.tasks, {b"t": f"high-{i}".encode()})
    reader = PriorityReader(group, p)

    first = await reader.read(10, block_ms=None)
    by_priority = {band.priority: [fields[b"t"] for _, fields in entries] for band, entries in first}
    assert by_priority[10] == [f"high-{i}".encode() for i in range(5)]  # all of them, in order, in the first read
    assert len(by_priority[1]) == 5  # the room they left goes to the low ones

    # Keep the high priority busy: the low one still gets its turn.
    low_taken = 0
    for n in range(300):
        for m in range(10):
            await redis.xadd(high.tasks, {b"t": f"more-{n}-{m}".encode()})
        for band, entries in await reader.read(10, block_ms=None):
            low_taken += len(entries) if band.priority == 1 else 0
    assert low_taken > 0


async def test_a_blocked_reader_wakes_for_a_task_of_any_priority(redis: Redis) -> None:
    p = PartitionKeys(0)
    group = ConsumerGroup(redis, WORKER_GROUP, "reader", [b.tasks for b in p.bands()])
    await group.ensure_groups()
    await redis.xadd(p.at_priority(7).tasks, {b"t": b"x"})
    reader = PriorityReader(group, p)
    ((band, entries),) = await reader.read(10, block_ms=None)
    assert band.priority == 7 and len(entries) == 1
    assert await reader.read(10, block_ms=50) == []
    # A stream's group deleted under the reader is created again, and the reader goes on.
    await redis.xgroup_destroy(p.at_priority(3).tasks, WORKER_GROUP)
    assert await reader.read(10, block_ms=None) == []
    await redis.xadd(p.at_priority(3).tasks, {b"t": b"y"})
    ((band, entries),) = await reader.read(10, block_ms=None)
    assert band.priority == 3


async def test_a_reader_on_one_busy_priority_sees_another_priority_when_that_stream_runs_dry(redis: Redis) -> None:
    p = PartitionKeys(0)
    group = ConsumerGroup(redis, WORKER_GROUP, "reader", [b.tasks for b in p.bands()])
    await group.ensure_groups()
    low, high = p.at_priority(1), p.at_priority(7)
    for i in range(3):
        await redis.xadd(low.tasks, {b"t": f"low-{i}".encode()})
    reader = PriorityReader(group, p, rescan_s=3600.0)  # reads the one busy stream alone for as long as it has work
    ((band, entries),) = await reader.read(10, block_ms=None)  # every stream looked at: only this one had work
    assert band.priority == 1 and len(entries) == 3
    for i in range(3, 5):
        await redis.xadd(low.tasks, {b"t": f"low-{i}".encode()})
    await redis.xadd(high.tasks, {b"t": b"high"})
    ((band, entries),) = await reader.read(10, block_ms=None)
    assert band.priority == 1 and [f[b"t"] for _, f in entries] == [b"low-3", b"low-4"]
    # The busy stream ran dry: every stream is looked at again, and the other priority's task is taken.
    ((band, entries),) = await reader.read(10, block_ms=None)
    assert band.priority == 7 and [f[b"t"] for _, f in entries] == [b"high"]
    assert await reader.read(10, block_ms=None) == []


async def test_a_reader_on_one_busy_priority_looks_at_every_priority_again_after_the_rescan_interval(
    redis: Redis,
) -> None:
    p = PartitionKeys(0)
    group = ConsumerGroup(redis, WORKER_GROUP, "reader", [b.tasks for b in p.bands()])
    await group.ensure_groups()
    low, high = p.at_priority(1), p.at_priority(10)
    await redis.xadd(low.tasks, {b"t": b"first"})
    reader = PriorityReader(group, p, rescan_s=0.05)
    ((band, _),) = await reader.read(10, block_ms=None)  # only this stream had work: it is read alone a while
    assert band.priority == 1
    for i in range(100):
        await redis.xadd(low.tasks, {b"t": f"low-{i}".encode()})
    await redis.xadd(high.tasks, {b"t": b"high"})
    await asyncio.sleep(0.1)  # past the interval: the next read looks at every stream, highest first
    by_priority = {band.priority: entries for band, entries in await reader.read(10, block_ms=None)}
    assert [f[b"t"] for _, f in by_priority[10]] == [b"high"]
    assert len(by_priority[1]) == 9  # the room the high one left
