"""The command handler on the in-memory repository: decisions, effects and retries without Redis."""

from __future__ import annotations

from spane_core.commands import Fail, MarkStarted, Start
from spane_core.definition import Workflow
from spane_core.events import ErrorInfo, NodeFailed
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.keys import all_partitions
from spane_core.state import NodeStatus
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.memory_repository import InMemoryRepository
from spane_scheduler.timers import TimerLoop

from tests.unit.helpers import workflow

E = ExecutionId("ex-1")
A = NodeId("a")
POLICY = {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 1_000, "jitter": True}}


class _Workflows:
    def __init__(self, wf: Workflow) -> None:
        self.wf = wf

    async def get(self, workflow_id: WorkflowId, version: int | None = None) -> Workflow:
        return self.wf


def _handler(repo: InMemoryRepository, wf: Workflow, now: int = 10_000) -> ExecutionStore:
    return ExecutionStore(repo, _Workflows(wf), clock=lambda: now, rand=lambda: 0.25)


async def test_a_retry_is_due_at_the_given_clock_plus_the_jittered_backoff() -> None:
    wf = workflow([{"id": "a", "type": "transform", "retryPolicy": POLICY}])
    repo = InMemoryRepository()
    store = _handler(repo, wf)
    started = await store.apply(Transition(E, [Start(E, "in")], workflow=wf))
    assert started.state is not None
    (entry,) = repo.tasks
    queued = started.state.node(A).queued_seq
    running = await store.apply(Transition(E, [MarkStarted(A, queued)]))
    assert running.state is not None
    lease = running.state.node(A).lease
    boom = ErrorInfo(message="boom")
    failed = await store.apply(Transition(E, [Fail(A, lease, boom)], ack_if_recorded=[entry]))
    (envelope,) = failed.events
    assert isinstance(envelope.event, NodeFailed) and envelope.at == 10_000
    # A fixed delay of 1000 ms, less a quarter of it (full jitter times the random 0.25).
    assert envelope.event.retry_at == 10_750
    assert list(repo.timers.values()) == [10_750]
    assert repo.acked == [entry] and entry not in repo.tasks
    assert [e.seq for e in await store.read_log(E)] == [1, 2, 3, 4]  # one seq per event, in order


async def test_a_stale_cached_snapshot_decides_again_on_the_current_one() -> None:
    wf = workflow([{"id": "a", "type": "transform"}])
    repo = InMemoryRepository()
    one, two = _handler(repo, wf), _handler(repo, wf)
    started = await one.apply(Transition(E, [Start(E)], workflow=wf))
    assert started.state is not None
    running = await two.apply(Transition(E, [MarkStarted(A, started.state.node(A).queued_seq)]))
    assert running.state is not None
    # ``one`` still caches the node as queued: its decision to do nothing is retried on the loaded snapshot.
    failed = await one.apply(Transition(E, [Fail(A, running.state.node(A).lease, ErrorInfo(message="x"))]))
    assert failed.state is not None and failed.state.node(A).status is not NodeStatus.RUNNING
    assert failed.events and failed.events[0].seq == running.state.seq + 1


async def test_the_scheduler_fires_a_delay_when_it_is_due_and_not_before() -> None:
    wf = workflow([{"id": "wait", "type": "delay", "config": {"ms": 500}, "outputs": ["b"]}, {"id": "b", "type": "x"}])
    repo = InMemoryRepository()
    store = _handler(repo, wf)
    await store.apply(Transition(E, [Start(E)], workflow=wf))
    assert list(repo.timers.values()) == [10_500]
    timers = TimerLoop(store, partitions=1, interval_ms=10)
    (p,) = all_partitions(1)

    assert await timers.fire_due(p, now=10_499) == 0
    assert not repo.tasks

    assert await timers.fire_due(p, now=10_500) == 1
    assert not repo.timers  # dropped in the commit that fired it
    (task,) = repo.tasks.values()
    assert task.node_id == "b"
    state = await store.load(E)
    assert state is not None and state.node(NodeId("wait")).status is NodeStatus.COMPLETED


async def test_the_scheduler_drops_a_timer_it_cannot_read() -> None:
    repo = InMemoryRepository()
    repo.timers["no-separators"] = 1
    timers = TimerLoop(_handler(repo, workflow([{"id": "a", "type": "x"}])), partitions=1, interval_ms=10)
    assert await timers.fire_due(all_partitions(1)[0], now=10) == 1
    assert not repo.timers
