"""The live-event fan-out in memory: filters, and a slow subscriber dropped instead of stalling anyone."""

from __future__ import annotations

import contextlib
from unittest.mock import AsyncMock, Mock

from spane_api.live import EventHub, Position, Subscription
from spane_core.codec import encode
from spane_core.events import Envelope, ExecutionPaused
from spane_core.ids import ExecutionId, WorkflowId


def envelope(execution_id: str, workflow_id: str, seq: int) -> Envelope:
    return Envelope(
        execution_id=ExecutionId(execution_id), workflow_id=WorkflowId(workflow_id), seq=seq, at=0,
        event=ExecutionPaused(),
    )  # fmt: skip


def quiet_redis() -> Mock:
    """A Redis whose streams are empty: enough for a hub to start reading (it is never asked to read here)."""
    redis, pipe = Mock(), Mock()
    pipe.execute = AsyncMock(return_value=[[]])
    redis.pipeline.return_value = pipe
    return redis


async def test_each_subscription_gets_what_its_filters_match_and_none_after_it_left() -> None:
    hub = EventHub(quiet_redis(), partitions=1)
    everything, by_workflow, by_execution, other = (
        Subscription(),
        Subscription(workflow_id="w1"),
        Subscription(execution_id="e2"),
        Subscription(execution_id="e3"),
    )
    async with contextlib.AsyncExitStack() as stack:
        for subscription in (everything, by_workflow, by_execution, other):
            await stack.enter_async_context(hub.subscribe(subscription))
        hub.publish(0, "5-1", [envelope("e1", "w1", 1), envelope("e2", "w2", 1), envelope("e2", "w2", 2)])
        assert [e.seq for _, e in await everything.take(0)] == [1, 1, 2]
        assert [(e.execution_id, e.seq) for _, e in await by_workflow.take(0)] == [("e1", 1)]
        taken = await by_execution.take(0)
        assert [(p, e.seq) for p, e in taken] == [(Position(0, (5, 1), 1), 1), (Position(0, (5, 1), 2), 2)]
        assert await other.take(0) == []
    hub.publish(0, "6-1", [envelope("e2", "w2", 3)])
    assert await by_execution.take(0) == [] and await everything.take(0) == []
    assert hub.subscribers == 0 and not hub._by_execution and not hub._broad


async def test_a_subscriber_that_falls_behind_is_dropped_and_its_buffer_freed() -> None:
    slow, fast = Subscription(limit=3), Subscription(limit=3)
    for seq in range(1, 5):
        slow.offer(Position(0, (1, 0), seq), envelope("e", "w", seq))
        fast.offer(Position(0, (1, 0), seq), envelope("e", "w", seq))
        if seq == 3:
            assert len(await fast.take(0)) == 3  # the fast one keeps up
    assert slow.dropped and await slow.take(0) == []
    assert not fast.dropped and [e.seq for _, e in await fast.take(0)] == [4]


def test_positions_print_and_parse_back() -> None:
    position = Position(2, (1700000000000, 3), 7)
    assert str(position) == "2-1700000000000-3-7"
    assert Position.parse(str(position)) == position
    assert Position.parse("12") is None and Position.parse("a-b-c-d") is None


async def test_a_read_begun_before_the_cursors_were_reset_is_left_to_the_fresh_cursors() -> None:
    """On a cluster each partition has a follower: one may still be reading with the cursors of listeners gone
    when a new listener resets them. Its answer is dropped (the next read from the fresh cursors has the same
    entries), so the new listener gets each entry once."""
    redis = Mock()
    hub = EventHub(redis, partitions=1)
    listener = Subscription()
    hub._subscriptions.add(listener)
    hub._cursors = {hub.streams[0]: "1-0"}
    fresh = {hub.streams[0]: "4-0"}
    body = encode([envelope("e", "w", 1)])

    async def xread(streams: dict[str, str], **_: object) -> list[object]:
        hub._cursors = fresh  # the listeners left and one came back while this read was blocked
        return [[hub.streams[0].encode(), [[b"5-0", {b"b": body}]]]]

    redis.xread = xread
    await hub._read_once(hub.streams)
    assert await listener.take(0) == []
    assert fresh == {hub.streams[0]: "4-0"}  # the next read starts from the fresh cursor
