"""Retrying a dead letter revives its execution with every branch that stopped when it failed; deleting one drops
it. Given events, when a command, then events."""

from __future__ import annotations

import pytest
from spane_core.commands import (
    Complete,
    DeleteDeadLetter,
    Fail,
    FireTimer,
    MarkStarted,
    RetryDeadLetter,
    Start,
)
from spane_core.effects import effects
from spane_core.errors import StateConflict
from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, NodeStatus, fold

from .helpers import Driver, tags, workflow
from .test_decide import run

E = ExecutionId("e1")
BOOM = ErrorInfo(message="boom")


def n(node_id: str) -> NodeId:
    return NodeId(node_id)


def wide_diamond(max_attempts: int = 1) -> Driver:
    """s -> {bad, slow, late, delayed} -> j: ``bad`` dies while its siblings are running, queued and delayed."""
    policy = {"maxAttempts": max_attempts, "backoff": {"type": "fixed", "delay": 10}}
    return Driver(
        workflow(
            [
                {"id": "s", "type": "transform", "outputs": ["bad", "slow", "late", "delayed"]},
                {"id": "bad", "type": "flaky", "retryPolicy": policy, "outputs": ["j"]},
                {"id": "slow", "type": "transform", "outputs": ["j"]},
                {"id": "late", "type": "transform", "outputs": ["j"]},
                {"id": "delayed", "type": "delay", "config": {"ms": 1000}, "outputs": ["j"]},
                {"id": "j", "type": "transform", "inputs": ["bad", "slow", "late", "delayed"]},
            ]
        )
    )


def dead_in_a_diamond(max_attempts: int = 1) -> tuple[Driver, str]:
    """The diamond failed by ``bad``'s dead letter; returns it and the lease of ``slow``, still running."""
    d = wide_diamond(max_attempts)
    d.send(Start(execution_id=E, input=1))
    run(d, "s", "S")
    slow = d.start_node("slow")
    for attempt in range(1, max_attempts + 1):
        events = d.send(Fail(node_id=n("bad"), lease=d.start_node("bad"), error=BOOM))
        if attempt < max_attempts:
            d.send(FireTimer(n("bad"), attempt))
    assert tags(events)[-2:] == ["node.dead_lettered:bad", "execution.failed:bad"]
    return d, slow


def test_a_revival_brings_back_every_branch_that_stopped_when_the_execution_failed() -> None:
    d, slow = dead_in_a_diamond()
    # While failed: the running sibling finishes and is recorded; the queued one does not start (its task is
    # acknowledged as stale); the delay's timer fires and is dropped.
    assert tags(d.send(Complete(node_id=n("slow"), lease=slow, output="SLOW"))) == ["node.completed:slow"]
    assert d.send(MarkStarted(node_id=n("late"), queued_seq=d.s.node(n("late")).queued_seq)) == []
    d.now += 1000
    assert d.send(FireTimer(n("delayed"), 1)) == []
    assert d.s.status is ExecutionStatus.FAILED

    before = d.state
    events = d.send(RetryDeadLetter(node_id=n("bad"), attempt=1))
    assert tags(events) == ["execution.resumed", "node.queued:late", "node.completed:delayed", "node.queued:bad"]
    tasks = effects(d.wf, before, d.s, events).tasks
    assert sorted(t.node_id for t in tasks) == ["bad", "late"]
    assert d.s.node(n("bad")).attempt == 2
    run(d, "late", "LATE")
    assert run(d, "bad", "BAD") == ["node.completed:bad", "node.queued:j"]
    assert run(d, "j", "J") == ["node.completed:j", "execution.completed"]
    assert fold(d.log) == d.state


def test_a_second_retry_of_the_same_entry_and_a_deletion_after_it_are_conflicts() -> None:
    d, _ = dead_in_a_diamond()
    d.send(RetryDeadLetter(node_id=n("bad"), attempt=1))
    with pytest.raises(StateConflict, match="retried already"):
        d.send(RetryDeadLetter(node_id=n("bad"), attempt=1))
    with pytest.raises(StateConflict):
        d.send(DeleteDeadLetter(node_id=n("bad"), attempt=1))


def test_the_rerun_gets_fresh_tries_and_dead_letters_again_under_a_new_attempt() -> None:
    d, _ = dead_in_a_diamond(max_attempts=2)
    d.send(RetryDeadLetter(node_id=n("bad"), attempt=2))
    assert d.s.node(n("bad")).attempt == 3
    events = d.send(Fail(node_id=n("bad"), lease=d.start_node("bad"), error=BOOM))
    assert tags(events) == ["node.failed:bad"]  # a retry: the policy counts the tries since the revival
    d.send(FireTimer(n("bad"), 3))
    events = d.send(Fail(node_id=n("bad"), lease=d.start_node("bad"), error=BOOM))
    assert tags(events) == ["node.failed:bad", "node.dead_lettered:bad", "execution.failed:bad"]
    assert d.s.node(n("bad")).attempt == 4
    d.send(RetryDeadLetter(node_id=n("bad"), attempt=4))  # the new entry may be retried in turn
    assert fold(d.log) == d.state


def test_deleting_an_entry_keeps_the_execution_failed_and_closes_the_entry() -> None:
    d, _ = dead_in_a_diamond()
    assert tags(d.send(DeleteDeadLetter(node_id=n("bad"), attempt=1))) == ["node.dead_letter_deleted:bad"]
    assert d.s.status is ExecutionStatus.FAILED
    assert d.s.node(n("bad")).status is NodeStatus.DEAD_LETTERED and d.s.node(n("bad")).dead_letter_deleted
    with pytest.raises(StateConflict, match="deleted"):
        d.send(RetryDeadLetter(node_id=n("bad"), attempt=1))
    assert fold(d.log) == d.state


def test_a_retry_with_edited_input_runs_the_node_on_it() -> None:
    d, _ = dead_in_a_diamond()
    before = d.state
    events = d.send(RetryDeadLetter(node_id=n("bad"), input={"fixed": True}, has_input=True, attempt=1))
    (task,) = [t for t in effects(d.wf, before, d.s, events).tasks if t.node_id == "bad"]
    assert task.input == {"fixed": True}
