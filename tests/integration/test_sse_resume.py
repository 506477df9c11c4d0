"""Resuming the all-events stream on several partitions: each partition is taken up after the last event the
client got from it, whatever the other partitions' timing (no event repeated, none skipped)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from spane_api.cursor import Cursor, event_id
from spane_api.live import Position, Subscription
from spane_api.resume import Gap, replay
from spane_core import codec
from spane_core.events import Envelope, NodeCompleted
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.keys import PartitionKeys

pytestmark = pytest.mark.integration


def envelope(name: str) -> Envelope:
    return Envelope(
        execution_id=ExecutionId(f"x-{name}"), workflow_id=WorkflowId("wf"), seq=1, at=0,
        event=NodeCompleted(node_id=NodeId(name), attempt=1),
    )  # fmt: skip


def by_partition(got: list[tuple[Position, Envelope] | Gap], partitions: int) -> dict[int, list[str]]:
    """The nodes of the replayed events, by partition; there must be no gap."""
    names: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for item in got:
        assert not isinstance(item, Gap)
        position, env = item
        assert isinstance(env.event, NodeCompleted)
        names[position.partition].append(env.event.node_id)
    return names


async def commit(redis: Redis, partition: int, ms: int, *names: str) -> None:
    body = codec.encode([envelope(n) for n in names])
    await redis.xadd(PartitionKeys(partition).events, {b"b": body}, id=f"{ms}-0")


async def test_a_partition_ahead_of_the_resumed_event_repeats_nothing(redis: Redis) -> None:
    await commit(redis, 0, 1000, "a0", "a1")
    await commit(redis, 0, 2000, "a2")
    await commit(redis, 1, 900, "b0")
    await commit(redis, 1, 1500, "b1")  # committed after a1's millisecond, and sent before a1 (reads interleave)
    await commit(redis, 1, 2500, "b2")
    await commit(redis, 2, 1200, "c0")  # a partition the client had nothing from yet
    # The client got a0, b0, b1 and a1, then lost the stream; it resumes with a1's id.
    sent = {0: ((1000, 0), 1), 1: ((1500, 0), 0)}
    cursor = Cursor.parse(event_id(Position(0, (1000, 0), 1), sent, 3), 3)
    assert cursor is not None

    got = [item async for item in replay(redis, 3, Subscription(), cursor)]
    # Partition 2, of which the client knows nothing, is taken up from a1's millisecond.
    assert by_partition(got, 3) == {0: ["a2"], 1: ["b2"], 2: ["c0"]}


async def test_a_partition_behind_the_resumed_event_loses_nothing(redis: Redis) -> None:
    await commit(redis, 0, 1000, "a0")
    await commit(redis, 1, 900, "b0")
    await commit(redis, 1, 950, "b1")  # the client's reader of partition 1 had not got it yet
    await commit(redis, 1, 1500, "b2")
    sent = {1: ((900, 0), 0), 0: ((1000, 0), 0)}
    cursor = Cursor.parse(event_id(Position(0, (1000, 0), 0), sent, 2), 2)
    assert cursor is not None

    got = [x async for x in replay(redis, 2, Subscription(), cursor)]
    assert by_partition(got, 2) == {0: [], 1: ["b1", "b2"]}
