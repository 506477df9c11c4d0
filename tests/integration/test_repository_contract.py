"""One contract, two repositories: what the Redis repository does, the in-memory one does too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, cast

import pytest
from redis.asyncio import Redis
from spane_core import codec
from spane_core.commands import Context, MarkStarted, Start
from spane_core.decide import decide_and_evolve
from spane_core.effects import Task, Timer, effects
from spane_core.events import Envelope
from spane_core.ids import ExecutionId, NodeId
from spane_core.keys import WORKER_GROUP, for_execution
from spane_core.state import ExecutionState
from spane_core.store.commit import Commit, Committed, Refused, Repository
from spane_core.store.executions import restore
from spane_core.store.memory_repository import InMemoryRepository
from spane_core.store.redis_repository import RedisRepository

from tests.unit.helpers import workflow

E = ExecutionId("contract-1")
A = NodeId("a")
pytestmark = pytest.mark.integration

WF = workflow([{"id": "a", "type": "transform"}])


class Probe(Protocol):
    """Reads what a repository holds beyond snapshots and logs: queued tasks and armed timers."""

    repo: Repository

    async def tasks(self) -> dict[str, Task]: ...

    async def timers(self) -> dict[str, int]: ...


class _MemoryProbe:
    def __init__(self) -> None:
        self.memory = InMemoryRepository()
        self.repo: Repository = self.memory

    async def tasks(self) -> dict[str, Task]:
        return dict(self.memory.tasks)

    async def timers(self) -> dict[str, int]:
        return dict(self.memory.timers)


class _RedisProbe:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.repo: Repository = RedisRepository(redis)
        self.keys = for_execution(E, 1)

    async def tasks(self) -> dict[str, Task]:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(self.keys.tasks))
        return {entry.decode(): codec.decode_task(fields[b"t"]) for entry, fields in entries}

    async def timers(self) -> dict[str, int]:
        pairs = cast(list[tuple[bytes, float]], await self.redis.zrange(self.keys.timers, 0, -1, withscores=True))
        return {member.decode(): int(due) for member, due in pairs}


@pytest.fixture(params=["memory", "redis"])
async def probe(request: pytest.FixtureRequest) -> AsyncIterator[Probe]:
    if request.param == "memory":
        yield _MemoryProbe()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    # The worker's group exists before any task is acknowledged, as in a running system.
    await redis.xgroup_create(for_execution(E, 1).tasks, WORKER_GROUP, id="0", mkstream=True)
    try:
        yield _RedisProbe(redis)
    finally:
        await redis.aclose()


def _transition(
    before: ExecutionState | None,
    command: Start | MarkStarted,
    timers: Sequence[Timer] = (),
    dropped_timers: Sequence[str] = (),
    acks: Sequence[str] = (),
    snapshot: bool = True,
) -> Commit:
    """The commit the handler would build for ``command``, with extra timers, drops and acks."""
    events, after = decide_and_evolve(before, WF, command, Context(now=1_000, lease="L1"))
    assert after is not None
    base = before.seq if before is not None else 0
    envelopes = [
        Envelope(execution_id=E, workflow_id=after.workflow_id, seq=base + n, at=1_000, event=event)
        for n, event in enumerate(events, start=1)
    ]
    eff = effects(WF, before, after, events)
    return Commit(
        E,
        base,
        state=after,
        snapshot=codec.encode(after) if snapshot else b"",
        envelopes=envelopes,
        encoded=[codec.encode(e) for e in envelopes],
        tasks=eff.tasks,
        timers=[*eff.timers, *timers],
        dropped_timers=[*eff.dropped_timers, *dropped_timers],
        acks=acks,
    )


async def _snapshot(repo: Repository) -> ExecutionState | None:
    (stored,) = await repo.load_stored([E])
    return restore(stored)


TIMER = Timer(execution_id=E, node_id=A, attempt=1, due=5_000)


async def test_a_first_commit_creates_the_snapshot_the_log_and_its_effects(probe: Probe) -> None:
    assert await probe.repo.load_stored([E]) == [None]
    start = _transition(None, Start(E, "in"), timers=[TIMER])
    assert await probe.repo.commit([start]) == [Committed(start.state.seq if start.state else -1)]
    assert await _snapshot(probe.repo) == start.state
    log = await probe.repo.read_log(E)
    assert [e.seq for e in log] == list(range(1, len(start.envelopes) + 1))
    assert log == list(start.envelopes)
    assert [t.node_id for t in (await probe.tasks()).values()] == [A]
    assert await probe.timers() == {TIMER.member: 5_000}
    assert await probe.repo.read_log(E, after_seq=1) == list(start.envelopes[1:])


async def test_a_stale_commit_is_refused_with_the_current_state_and_writes_nothing(probe: Probe) -> None:
    start = _transition(None, Start(E))
    await probe.repo.commit([start])
    assert start.state is not None
    stale = _transition(None, Start(E), timers=[TIMER])  # decided as if the execution were new
    (refused,) = await probe.repo.commit([stale])
    assert isinstance(refused, Refused) and refused.seq == start.state.seq
    assert restore(refused.stored) == start.state
    assert len(await probe.repo.read_log(E)) == len(start.envelopes)
    assert len(await probe.tasks()) == 1 and await probe.timers() == {}


async def test_events_append_in_order_and_acks_and_drops_apply(probe: Probe) -> None:
    start = _transition(None, Start(E), timers=[TIMER])
    await probe.repo.commit([start])
    assert start.state is not None
    (entry,) = await probe.tasks()
    started = _transition(
        start.state, MarkStarted(A, start.state.node(A).queued_seq), dropped_timers=[TIMER.member], acks=[entry]
    )
    assert started.envelopes and started.state is not None
    assert await probe.repo.commit([started]) == [Committed(started.state.seq)]
    log = await probe.repo.read_log(E)
    assert [e.seq for e in log] == list(range(1, started.state.seq + 1))
    assert await _snapshot(probe.repo) == started.state
    assert await probe.tasks() == {} and await probe.timers() == {}


async def test_a_commit_without_events_applies_its_acks_and_drops_only(probe: Probe) -> None:
    start = _transition(None, Start(E), timers=[TIMER])
    await probe.repo.commit([start])
    (entry,) = await probe.tasks()
    # No version is checked without events: the expected seq does not matter.
    (result,) = await probe.repo.commit([Commit(E, 99, dropped_timers=[TIMER.member], acks=[entry])])
    assert isinstance(result, Committed)
    assert await probe.tasks() == {} and await probe.timers() == {}
    assert await _snapshot(probe.repo) == start.state
    assert len(await probe.repo.read_log(E)) == len(start.envelopes)


async def test_an_unknown_execution_has_no_snapshot_and_no_log(probe: Probe) -> None:
    assert await probe.repo.load_stored([ExecutionId("nobody")]) == [None]
    assert await probe.repo.read_log(ExecutionId("nobody")) == []


async def test_due_timers_are_listed_earliest_first_up_to_the_limit_and_can_be_dropped(probe: Probe) -> None:
    later = Timer(execution_id=E, node_id=NodeId("b"), attempt=1, due=7_000)
    await probe.repo.commit([_transition(None, Start(E), timers=[later, TIMER])])
    assert await probe.repo.due_timers(0, now=4_999, limit=10) == []
    assert await probe.repo.due_timers(0, now=7_000, limit=10) == [TIMER.member, later.member]
    assert await probe.repo.due_timers(0, now=7_000, limit=1) == [TIMER.member]
    await probe.repo.drop_timers(0, [TIMER.member])
    assert await probe.timers() == {later.member: 7_000}


async def test_a_commit_may_leave_the_snapshot_and_a_load_folds_the_log_after_it(probe: Probe) -> None:
    start = _transition(None, Start(E))
    await probe.repo.commit([start])
    assert start.state is not None
    started = _transition(start.state, MarkStarted(A, start.state.node(A).queued_seq), snapshot=False)
    assert await probe.repo.commit([started]) == [Committed(started.state.seq if started.state else -1)]
    (stored,) = await probe.repo.load_stored([E])
    assert stored is not None and codec.decode_state(stored.snapshot) == start.state
    assert list(stored.tail) == list(started.encoded)
    assert restore(stored) == started.state


async def test_a_stale_commit_on_a_state_in_the_log_is_refused_with_the_log_after_that_state(probe: Probe) -> None:
    start = _transition(None, Start(E))
    await probe.repo.commit([start])
    assert start.state is not None
    started = _transition(start.state, MarkStarted(A, start.state.node(A).queued_seq), snapshot=False)
    await probe.repo.commit([started])
    stale = _transition(start.state, MarkStarted(A, start.state.node(A).queued_seq))  # decided on start.state
    (refused,) = await probe.repo.commit([stale])
    assert isinstance(refused, Refused) and started.state is not None and refused.seq == started.state.seq
    assert refused.stored is None and list(refused.tail or []) == list(started.encoded)
    assert len(await probe.repo.read_log(E)) == started.state.seq
