"""The rules of sub-workflow nodes: the node waits for a child it names, started as an effect of the commit; the
child's end completes or fails the node, with the node's retry policy and continueOnFail; joins after it run."""

from __future__ import annotations

from typing import Any

from spane_core.commands import (
    Cancel,
    ChildFinished,
    Complete,
    Fail,
    FireExecutionTimer,
    FireTimer,
    Pause,
    Resume,
    Start,
)
from spane_core.decide_subflow import MAX_DEPTH_EXCEEDED, child_execution_id
from spane_core.effects import effects
from spane_core.effects_subflow import FOLLOW_PARENT, REPORT_TO_PARENT, START_CHILD
from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, NodeStatus, fold

from .helpers import Driver, tags, workflow
from .test_decide import run

E = ExecutionId("e1")
SUB = NodeId("sub")


def sub(**config: Any) -> dict[str, Any]:
    return {"id": "sub", "type": "sub-workflow", "config": {"workflowId": "child", **config}}


def diamond_with_sub(policy: dict[str, Any] | None = None) -> Driver:
    node = sub() | ({"retryPolicy": policy} if policy else {})
    return Driver(
        workflow(
            [
                {"id": "s", "type": "transform", "outputs": ["sub", "b"]},
                node | {"outputs": ["j"]},
                {"id": "b", "type": "transform", "inputs": ["s"], "outputs": ["j"]},
                {"id": "j", "type": "transform", "inputs": ["sub", "b"]},
            ]
        )
    )


def child_of(d: Driver) -> ExecutionId:
    child = d.s.node(SUB).child_execution_id
    assert child is not None
    return child


def test_the_node_waits_for_a_child_whose_id_is_derived_and_started_by_an_effect_of_the_commit() -> None:
    d = Driver(workflow([sub()]))
    before = d.state
    events = d.send(Start(execution_id=E, input={"x": 1}))
    assert tags(events) == ["execution.started", "node.queued:sub", "node.started:sub", "node.waiting:sub"]
    node = d.s.node(SUB)
    assert (node.status, node.attempt) == (NodeStatus.WAITING, 1)
    assert node.child_execution_id == child_execution_id(E, SUB, 1, d.now)
    # The same parent, node and try give the same child; another try another one.
    assert child_execution_id(E, SUB, 1, d.now) != child_execution_id(E, SUB, 2, d.now)
    (task,) = effects(d.wf, before, d.s, events).tasks  # no worker task: one effect, start the child
    assert (task.kind, task.target, task.input, task.attempt) == (START_CHILD, node.child_execution_id, {"x": 1}, 1)


def test_the_child_s_output_completes_the_node_and_the_join_after_it_runs() -> None:
    d = diamond_with_sub()
    d.send(Start(execution_id=E, input=1))
    assert run(d, "s", "S") == ["node.completed:s", "node.queued:sub", "node.started:sub", "node.waiting:sub",
                                "node.queued:b"]  # fmt: skip
    assert run(d, "b", "B") == ["node.completed:b"]
    events = d.send(ChildFinished(SUB, child_of(d), completed=True, output={"child": "out"}))
    assert tags(events) == ["node.completed:sub", "node.queued:j"]
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert task.input == {"sub": {"child": "out"}, "b": "B"}
    assert run(d, "j", "J") == ["node.completed:j", "execution.completed"]
    assert fold(d.log) == d.state


def test_a_report_about_another_child_or_a_second_report_changes_nothing() -> None:
    d = Driver(workflow([sub()]))
    d.send(Start(execution_id=E))
    assert d.send(ChildFinished(SUB, ExecutionId("someone-else"), completed=True)) == []
    d.send(ChildFinished(SUB, child_of(d), completed=True, output=1))
    assert d.send(ChildFinished(SUB, child_of(d), completed=True, output=2)) == []
    assert d.s.output == 1


def test_a_failed_child_fails_the_try_and_a_retry_starts_a_new_child() -> None:
    d = Driver(workflow([sub() | {"retryPolicy": {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}}}]))
    d.send(Start(execution_id=E))
    first = child_of(d)
    events = d.send(ChildFinished(SUB, first, completed=False, error=ErrorInfo(message="child broke")))
    assert tags(events) == ["node.failed:sub"] and d.s.node(SUB).status is NodeStatus.RETRYING
    d.now += 10
    before = d.state
    events = d.send(FireTimer(SUB, 1))
    assert tags(events) == ["node.queued:sub", "node.started:sub", "node.waiting:sub"]
    second = child_of(d)
    assert second != first and d.s.node(SUB).attempt == 2
    assert [t.kind for t in effects(d.wf, before, d.s, events).tasks] == [START_CHILD]
    assert d.send(ChildFinished(SUB, first, completed=True)) == []  # the old child's late report
    events = d.send(ChildFinished(SUB, second, completed=False, error=ErrorInfo(message="again")))
    assert tags(events) == ["node.failed:sub", "node.dead_lettered:sub", "execution.failed:sub"]


def test_continue_on_fail_hands_the_child_s_error_to_the_children() -> None:
    d = Driver(workflow([sub() | {"retryPolicy": {"maxAttempts": 1, "continueOnFail": True}, "outputs": ["after"]},
                         {"id": "after", "type": "transform"}]))  # fmt: skip
    d.send(Start(execution_id=E))
    error = ErrorInfo(message="sub-workflow 'child' failed: boom", type="SubWorkflowFailed")
    events = d.send(ChildFinished(SUB, child_of(d), completed=False, error=error))
    assert tags(events) == ["node.failed:sub", "node.queued:after"]
    assert d.s.node(SUB).output["error"] == {"message": error.message, "type": "SubWorkflowFailed"}


def test_too_deep_fails_the_node_at_once_whatever_its_retry_policy() -> None:
    d = Driver(workflow([sub() | {"retryPolicy": {"maxAttempts": 5}}]))
    d.send(Start(execution_id=E))
    error = ErrorInfo(message="a -> a -> a", type=MAX_DEPTH_EXCEEDED)
    events = d.send(ChildFinished(SUB, child_of(d), completed=False, error=error, retryable=False))
    assert tags(events) == ["node.failed:sub", "node.dead_lettered:sub", "execution.failed:sub"]
    assert d.s.error is not None and d.s.error.type == MAX_DEPTH_EXCEEDED


def test_pause_resume_and_cancel_of_the_parent_ask_its_waiting_children_to_follow() -> None:
    d = Driver(workflow([sub()]))
    d.send(Start(execution_id=E))
    child = child_of(d)
    for command, status in ((Pause(), ExecutionStatus.PAUSED), (Resume(), ExecutionStatus.RUNNING),
                            (Cancel(), ExecutionStatus.CANCELLED)):  # fmt: skip
        before = d.state
        events = d.send(command)
        assert d.s.status is status
        (task,) = effects(d.wf, before, d.s, events).tasks
        assert (task.kind, task.target, task.node_id) == (FOLLOW_PARENT, child, SUB)
    assert d.s.node(SUB).status is NodeStatus.CANCELLED
    assert d.send(ChildFinished(SUB, child, completed=False)) == []  # the child's cancellation comes back: no-op


def test_a_child_reports_its_end_to_its_parent_whether_completed_or_cancelled() -> None:
    parent = ExecutionId("parent")
    for end in ("complete", "cancel"):
        d = Driver(workflow([{"id": "a", "type": "transform"}]))
        d.send(Start(execution_id=E, parent_execution_id=parent, parent_node_id=SUB, depth=1))
        assert (d.s.parent_execution_id, d.s.depth) == (parent, 1)
        before = d.state
        if end == "complete":
            lease = d.start_node("a")
            before = d.state
            events = d.send(Complete(node_id=NodeId("a"), lease=lease, output="A"))
        else:
            events = d.send(Cancel())
        reports = [(t.kind, t.target, t.node_id) for t in effects(d.wf, before, d.s, events).tasks]
        assert reports == [(REPORT_TO_PARENT, parent, SUB)], end


def test_a_parent_that_times_out_cancels_its_waiting_node_and_asks_the_child_to_follow() -> None:
    d = Driver(workflow([sub()]))
    d.send(Start(execution_id=E, timeout_ms=1_000))
    child = child_of(d)
    assert d.s.deadline is not None
    d.now = d.s.deadline
    before = d.state
    events = d.send(FireExecutionTimer(kind="deadline", due=d.s.deadline))
    assert d.s.status is ExecutionStatus.FAILED and d.s.node(SUB).status is NodeStatus.CANCELLED
    follow = [(t.kind, t.target) for t in effects(d.wf, before, d.s, events).tasks]
    assert follow == [(FOLLOW_PARENT, child)]


def test_a_parent_failed_by_another_branch_lets_its_waiting_child_run_on() -> None:
    d = Driver(workflow([sub(), {"id": "other", "type": "transform", "retryPolicy": {"maxAttempts": 1}}]))
    d.send(Start(execution_id=E))
    before = d.state
    events = d.send(Fail(node_id=NodeId("other"), lease=d.start_node("other"), error=ErrorInfo(message="x")))
    assert d.s.status is ExecutionStatus.FAILED and d.s.node(SUB).status is NodeStatus.WAITING
    assert effects(d.wf, before, d.s, events).tasks == []
    # The child's end is still recorded (running nodes finish), and the execution stays failed.
    assert tags(d.send(ChildFinished(SUB, child_of(d), completed=True, output=1))) == ["node.completed:sub"]
