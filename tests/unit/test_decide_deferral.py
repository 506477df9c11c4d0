"""Given a history, when a limit defers a node, then it waits on a durable timer without spending an attempt."""

from __future__ import annotations

from spane_core.commands import Cancel, Defer, FireTimer, Pause, Resume, Start
from spane_core.effects import effects, timer_member
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import NodeStatus

from .helpers import Driver, tags, workflow

E = ExecutionId("e1")
A = NodeId("a")
ONE: list[dict[str, object]] = [{"id": "a", "type": "http", "config": {"url": "http://x.test/"}}]


def started(nodes: list[dict[str, object]] = ONE, **extra: object) -> Driver:
    d = Driver(workflow(nodes, **extra))
    d.send(Start(execution_id=E))
    return d


def test_a_deferred_node_waits_with_the_limit_as_reason_on_a_timer_for_the_same_attempt() -> None:
    d = started()
    queued = d.s.node(A)
    before = d.s
    events = d.send(Defer(node_id=A, queued_seq=queued.queued_seq, reason="rate-limit", until=5_000))
    assert tags(events) == ["node.waiting:a"]
    assert events[0].reason == "rate-limit" and events[0].until == 5_000  # type: ignore[union-attr]
    node = d.s.node(A)
    assert (node.status, node.attempt, node.deferred, node.started_at) == (NodeStatus.WAITING, 1, "rate-limit", None)
    (timer,) = effects(d.wf, before, d.s, events).timers
    assert (timer.member, timer.due) == (timer_member(E, A, 1), 5_000)


def test_its_timer_queues_the_same_attempt_again() -> None:
    d = started()
    d.send(Defer(node_id=A, queued_seq=d.s.node(A).queued_seq, reason="circuit-breaker", until=5_000))
    d.now = 5_000
    assert tags(d.send(FireTimer(node_id=A, attempt=1))) == ["node.queued:a"]
    node = d.s.node(A)
    assert (node.status, node.attempt, node.deferred, node.wait_until) == (NodeStatus.QUEUED, 1, None, None)
    # Deferred as often as the limits say: the attempt stays the first.
    d.send(Defer(node_id=A, queued_seq=node.queued_seq, reason="concurrency-limit", until=6_000))
    d.send(FireTimer(node_id=A, attempt=1))
    assert d.s.node(A).attempt == 1


def test_a_stale_task_or_a_paused_execution_defers_nothing() -> None:
    d = started()
    seq = d.s.node(A).queued_seq
    assert d.send(Defer(node_id=A, queued_seq=seq + 7, reason="rate-limit", until=5_000)) == []
    d.send(Pause())
    assert d.send(Defer(node_id=A, queued_seq=seq, reason="rate-limit", until=5_000)) == []


def test_resume_queues_a_deferral_that_fell_due_while_paused_and_leaves_a_later_one_on_its_timer() -> None:
    d = started([{"id": "a", "type": "http"}, {"id": "b", "type": "http"}])
    b = NodeId("b")
    d.send(Defer(node_id=A, queued_seq=d.s.node(A).queued_seq, reason="rate-limit", until=2_000))
    d.send(Defer(node_id=b, queued_seq=d.s.node(b).queued_seq, reason="rate-limit", until=9_000))
    d.send(Pause())
    d.now = 3_000
    assert d.send(FireTimer(node_id=A, attempt=1)) == []  # paused: resume runs what is due
    assert tags(d.send(Resume())) == ["execution.resumed", "node.queued:a"]
    assert d.s.node(b).status is NodeStatus.WAITING


def test_a_deferred_node_keeps_its_place_under_max_concurrency() -> None:
    d = started([{"id": "a", "type": "http"}, {"id": "b", "type": "http"}], maxConcurrency=1)
    assert d.s.node(NodeId("b")).status is NodeStatus.PENDING
    d.send(Defer(node_id=A, queued_seq=d.s.node(A).queued_seq, reason="rate-limit", until=2_000))
    assert d.s.node(NodeId("b")).status is NodeStatus.PENDING  # a waits for its turn, b does not jump ahead


def test_cancel_drops_the_deferral_timer() -> None:
    d = started()
    d.send(Defer(node_id=A, queued_seq=d.s.node(A).queued_seq, reason="rate-limit", until=2_000))
    before = d.s
    events = d.send(Cancel())
    assert effects(d.wf, before, d.s, events).dropped_timers == [timer_member(E, A, 1)]
