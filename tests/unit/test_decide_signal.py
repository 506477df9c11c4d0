"""Given a history, when a signal (or the wait's timer), then these events: the rules of ``wait`` nodes."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.commands import Cancel, FireTimer, Pause, Resume, RetryDeadLetter, Signal, Start
from spane_core.effects import effects
from spane_core.errors import InvalidInput, StateConflict
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, NodeStatus
from spane_core.validation import BUILTIN_NODE_TYPES, parse_definition

from .helpers import Driver, tags, workflow

E = ExecutionId("e1")
APPROVE = NodeId("approve")


def approval(timeout_ms: int | None = None, **extra: Any) -> Driver:
    wait: dict[str, Any] = {"id": "approve", "type": "wait", "config": {"signal": "approval"}, "outputs": ["ship"]}
    if timeout_ms is not None:
        wait["timeoutMs"] = timeout_ms
    return Driver(workflow([wait | extra, {"id": "ship", "type": "transform", "inputs": ["approve"]}]))


def test_a_wait_node_waits_for_its_signal_with_no_task_and_no_timer() -> None:
    d = approval()
    events = d.send(Start(execution_id=E, input={"order": 7}))
    assert tags(events) == ["execution.started", "node.queued:approve", "node.started:approve", "node.waiting:approve"]
    out = effects(d.wf, None, d.s, events)
    assert out.tasks == [] and out.timers == []
    assert d.s.node(APPROVE).status is NodeStatus.WAITING


def test_the_signal_completes_the_node_with_its_data_and_the_children_run_on_it() -> None:
    d = approval()
    d.send(Start(execution_id=E, input={"order": 7}))
    events = d.send(Signal("approval", {"by": "ada"}))
    assert tags(events) == ["node.completed:approve", "node.queued:ship"]
    assert d.s.node(APPROVE).output == {"by": "ada"}
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert task.node_id == "ship" and task.input == {"by": "ada"}


def test_a_signal_no_node_waits_for_is_refused_naming_what_it_waits_for() -> None:
    d = approval()
    d.send(Start(execution_id=E, input=None))
    with pytest.raises(StateConflict, match="waits for the signal 'payment' \\(it waits for 'approval'\\)"):
        d.send(Signal("payment"))
    d.send(Signal("approval"))
    with pytest.raises(StateConflict, match="none of its nodes waits"):  # the signal came already
        d.send(Signal("approval"))


def test_a_signal_while_paused_completes_the_node_and_the_resume_runs_its_children() -> None:
    d = approval()
    d.send(Start(execution_id=E, input=None))
    d.send(Pause())
    assert tags(d.send(Signal("approval", 1))) == ["node.completed:approve"]
    assert "node.queued:ship" in tags(d.send(Resume()))


def test_no_signal_before_the_timeout_fails_the_node_without_retries() -> None:
    d = approval(timeout_ms=5_000)
    events = d.send(Start(execution_id=E, input=None))
    (timer,) = effects(d.wf, None, d.s, events).timers
    assert (timer.node_id, timer.due) == ("approve", d.now + 5_000)
    d.now += 5_000
    events = d.send(FireTimer(node_id=APPROVE, attempt=1))
    assert tags(events) == ["node.failed:approve", "node.dead_lettered:approve", "execution.failed:approve"]
    error = d.s.node(APPROVE).error
    assert error is not None and error.type == "SignalTimeout"
    # The dead letter's retry waits again, with a new timeout.
    events = d.send(RetryDeadLetter(node_id=APPROVE))
    assert tags(events)[-3:] == ["node.queued:approve", "node.started:approve", "node.waiting:approve"]
    assert [t.due for t in effects(d.wf, None, d.s, events).timers] == [d.now + 5_000]
    assert tags(d.send(Signal("approval")))[:2] == ["node.completed:approve", "node.queued:ship"]


def test_a_timeout_with_continue_on_fail_lets_the_children_run() -> None:
    d = approval(timeout_ms=100, retryPolicy={"continueOnFail": True})
    d.send(Start(execution_id=E, input=None))
    d.now += 100
    assert tags(d.send(FireTimer(node_id=APPROVE, attempt=1))) == ["node.failed:approve", "node.queued:ship"]


def test_a_timeout_that_fell_due_while_paused_fails_the_node_on_resume() -> None:
    d = approval(timeout_ms=100)
    d.send(Start(execution_id=E, input=None))
    d.send(Pause())
    d.now += 500
    assert d.send(FireTimer(node_id=APPROVE, attempt=1)) == []  # paused: the resume runs what fell due
    assert "node.failed:approve" in tags(d.send(Resume()))
    assert d.s.status is ExecutionStatus.FAILED


def test_a_late_timer_after_the_signal_changes_nothing_and_a_finished_execution_takes_no_signal() -> None:
    d = approval(timeout_ms=100)
    d.send(Start(execution_id=E, input=None))
    d.send(Signal("approval"))
    d.now += 100
    assert d.send(FireTimer(node_id=APPROVE, attempt=1)) == []
    d.send(Cancel())
    with pytest.raises(StateConflict, match="cannot signal an execution that is cancelled"):
        d.send(Signal("approval"))


def test_a_wait_node_needs_a_signal_name() -> None:
    raw = {"id": "w", "nodes": [{"id": "approve", "type": "wait", "config": {"signal": "not ok!"}}]}
    with pytest.raises(InvalidInput) as raised:
        parse_definition(raw, BUILTIN_NODE_TYPES)
    assert [e.path for e in raised.value.errors] == ["nodes[0].config.signal"]
    raw["nodes"][0]["config"] = {}  # type: ignore[index]
    with pytest.raises(InvalidInput) as raised:
        parse_definition(raw, BUILTIN_NODE_TYPES)
    assert [e.path for e in raised.value.errors] == ["nodes[0].config.signal"]


def test_a_signal_for_a_parent_whose_child_waits_names_the_child_to_signal() -> None:
    # The wait node sits in a sub-workflow: the signal goes to the child execution, which the refusal names.
    d = Driver(workflow([{"id": "sub", "type": "sub-workflow", "config": {"workflowId": "child"}}]))
    d.send(Start(execution_id=E, input=None))
    child = d.s.node(NodeId("sub")).child_execution_id
    assert child is not None
    with pytest.raises(StateConflict, match=f"none of its nodes waits; its sub-workflow node 'sub' runs {child}"):
        d.send(Signal("approval"))
