"""A commit whose keys hold another type is refused before anything is written: Redis keeps what a script wrote
before an error, so a half-written transition (a snapshot ahead of its log, a task without its event) would
corrupt the execution. Each of the commit's keys is broken in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from redis.asyncio import Redis
from spane_core.commands import MarkStarted, Start
from spane_core.ids import ExecutionId, NodeId
from spane_core.keys import WORKER_GROUP, for_execution
from spane_core.store.commit import Committed, Failed
from spane_core.store.redis_repository import RedisRepository

from .test_repository_contract import TIMER, _transition

pytestmark = pytest.mark.integration

E = ExecutionId("contract-1")  # the execution ``_transition`` builds commits for
KEYS = for_execution(E, 1)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.xgroup_create(KEYS.tasks, WORKER_GROUP, id="0", mkstream=True)
    try:
        yield client
    finally:
        await client.delete(KEYS.snapshot(E), KEYS.log(E), KEYS.events, KEYS.tasks, KEYS.timers)
        await client.aclose()


@pytest.mark.parametrize("broken", ["log", "events", "tasks", "timers"])
async def test_a_commit_on_a_key_of_another_type_writes_nothing(redis: Redis, broken: str) -> None:
    repo = RedisRepository(redis)
    start = _transition(None, Start(E), timers=[TIMER])
    assert await repo.commit([start]) == [Committed(start.state.seq if start.state else -1)]
    assert start.state is not None
    entries = cast(list[tuple[bytes, object]], await redis.xrange(KEYS.tasks))
    (entry,) = [e.decode() for e, _ in entries]
    # The next transition writes every key: its events, the snapshot, a task ack, a timer and a dropped timer.
    later = TIMER.__class__(execution_id=E, node_id=NodeId("a"), attempt=2, due=9_000)
    started = _transition(
        start.state, MarkStarted(NodeId("a"), start.state.node(NodeId("a")).queued_seq),
        timers=[later], dropped_timers=[TIMER.member], acks=[entry],
    )  # fmt: skip
    key = {"log": KEYS.log(E), "events": KEYS.events, "tasks": KEYS.tasks, "timers": KEYS.timers}[broken]
    kept = await redis.dump(key)
    await redis.delete(key)
    await redis.set(key, "not what the commit expects")
    before = await _everything_but(redis, broken)

    (result,) = await repo.commit([started])

    assert isinstance(result, Failed) and "WRONGTYPE" in result.cause
    assert await _everything_but(redis, broken) == before
    await redis.delete(key)
    assert kept is not None
    await redis.restore(key, 0, kept)
    assert await repo.commit([started]) == [Committed(started.state.seq if started.state else -1)]


async def _everything_but(redis: Redis, broken: str) -> dict[str, object]:
    """What the commit's keys hold (but the broken one), to compare before and after."""
    readers: dict[str, Callable[[], Awaitable[object]]] = {
        "snapshot": lambda: redis.hgetall(KEYS.snapshot(E)),
        "log": lambda: redis.lrange(KEYS.log(E), 0, -1),
        "events": lambda: redis.xlen(KEYS.events),
        "tasks": lambda: redis.xrange(KEYS.tasks),
        "timers": lambda: redis.zrange(KEYS.timers, 0, -1, withscores=True),
    }
    return {name: await read() for name, read in readers.items() if name != broken}
