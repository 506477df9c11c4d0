"""Given a history, when a command, then these events: the rules of an execution."""

from __future__ import annotations

import pytest
from spane_core.commands import (
    Cancel,
    Complete,
    Fail,
    FireTimer,
    MarkStarted,
    Pause,
    Resume,
    RetryDeadLetter,
    Start,
    WorkerLost,
)
from spane_core.effects import effects
from spane_core.errors import StateConflict
from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, NodeStatus

from .helpers import Driver, tags, workflow

E = ExecutionId("e1")
DIAMOND = [
    {"id": "s", "type": "transform", "outputs": ["a", "b"]},
    {"id": "a", "type": "transform", "outputs": ["j"]},
    {"id": "b", "type": "transform", "inputs": ["s"], "outputs": ["j"]},
    {"id": "j", "type": "transform", "inputs": ["a", "b"]},
]


def n(node_id: str) -> NodeId:
    return NodeId(node_id)


def run(d: Driver, node_id: str, output: object = None, next_nodes: list[str] | None = None) -> list[str]:
    lease = d.start_node(node_id)
    nxt = None if next_nodes is None else [n(x) for x in next_nodes]
    return tags(d.send(Complete(node_id=n(node_id), lease=lease, output=output, next_nodes=nxt)))


def test_start_queues_the_entry_nodes_with_the_execution_input() -> None:
    d = Driver(workflow(DIAMOND))
    events = d.send(Start(execution_id=E, input={"k": 1}))
    assert tags(events) == ["execution.started", "node.queued:s"]
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert (task.node_id, task.attempt, task.input, task.queued_seq) == ("s", 1, {"k": 1}, 2)


def test_a_join_waits_for_every_parent_and_gets_their_outputs_by_id() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E, input=1))
    assert run(d, "s", "S") == ["node.completed:s", "node.queued:a", "node.queued:b"]
    assert run(d, "a", "A") == ["node.completed:a"]
    lease = d.start_node("b")
    before = d.s
    events = d.send(Complete(node_id=n("b"), lease=lease, output="B"))
    assert tags(events) == ["node.completed:b", "node.queued:j"]
    assert before.node(n("j")).status is NodeStatus.PENDING
    (task,) = effects(d.wf, before, d.s, events).tasks
    assert task.input == {"a": "A", "b": "B"}
    assert task.queued_seq == d.s.node(n("j")).queued_seq
    assert run(d, "j", "J") == ["node.completed:j", "execution.completed"]
    assert d.s.status is ExecutionStatus.COMPLETED and d.s.output == "J"


def test_branching_skips_the_children_not_chosen_and_what_only_they_lead_to() -> None:
    d = Driver(
        workflow(
            [
                {"id": "c", "type": "condition", "outputs": ["yes", "no"]},
                {"id": "yes", "type": "transform", "outputs": ["end"]},
                {"id": "no", "type": "transform", "outputs": ["after-no"]},
                {"id": "after-no", "type": "transform", "outputs": ["end"]},
                {"id": "end", "type": "transform"},
            ]
        )
    )
    d.send(Start(execution_id=E))
    assert run(d, "c", "C", next_nodes=["yes"]) == [
        "node.completed:c",
        "node.skipped:no",
        "node.skipped:after-no",
        "node.queued:yes",
    ]
    events = d.send(Complete(node_id=n("yes"), lease=d.start_node("yes"), output="Y"))
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert task.input == {"yes": "Y", "after-no": None}  # a skipped parent gives null
    assert run(d, "end", "E") == ["node.completed:end", "execution.completed"]


def test_output_of_several_terminals_leaves_skipped_ones_out() -> None:
    d = Driver(
        workflow(
            [
                {"id": "c", "type": "condition", "outputs": ["x", "y"]},
                {"id": "x", "type": "transform"},
                {"id": "y", "type": "transform"},
            ]
        )
    )
    d.send(Start(execution_id=E))
    run(d, "c", None, next_nodes=["x"])
    run(d, "x", {"v": 1})
    assert d.s.status is ExecutionStatus.COMPLETED
    assert d.s.output == {"x": {"v": 1}}


def test_a_result_is_recorded_once_and_a_stale_lease_is_discarded() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    first = d.start_node("s")
    # The task is reclaimed from a silent worker: the node restarts under a new lease.
    second = d.start_node("s")
    assert first != second
    assert d.send(Complete(node_id=n("s"), lease=first, output="late")) == []
    assert tags(d.send(Complete(node_id=n("s"), lease=second, output="ok")))[0] == "node.completed:s"
    assert d.send(Complete(node_id=n("s"), lease=second, output="again")) == []
    assert d.s.node(n("s")).output == "ok"


def test_a_task_of_an_older_queueing_cannot_start_the_node() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    assert d.send(MarkStarted(node_id=n("s"), queued_seq=999)) == []


def test_failures_retry_with_backoff_then_dead_letter_and_fail_the_execution() -> None:
    policy = {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 500}}
    d = Driver(workflow([{"id": "a", "type": "transform", "retryPolicy": policy}]))
    d.send(Start(execution_id=E, input="in"))
    boom = ErrorInfo(message="boom", type="RuntimeError")
    events = d.send(Fail(node_id=n("a"), lease=d.start_node("a"), error=boom))
    assert tags(events) == ["node.failed:a"]
    assert events[0].will_retry and events[0].retry_at == 1_500  # type: ignore[union-attr]
    (timer,) = effects(d.wf, None, d.s, events).timers
    assert (timer.due, timer.attempt) == (1_500, 1)
    d.now = 1_500
    assert tags(d.send(FireTimer(node_id=n("a"), attempt=1))) == ["node.queued:a"]
    assert d.s.node(n("a")).attempt == 2
    events = d.send(Fail(node_id=n("a"), lease=d.start_node("a"), error=boom))
    assert tags(events) == ["node.failed:a", "node.dead_lettered:a", "execution.failed:a"]
    assert d.s.status is ExecutionStatus.FAILED
    assert d.s.node(n("a")).status is NodeStatus.DEAD_LETTERED
    # The dead letter is retried with edited input and the execution revives.
    events = d.send(RetryDeadLetter(node_id=n("a"), input="edited", has_input=True))
    assert tags(events) == ["execution.resumed", "node.queued:a"]
    assert effects(d.wf, None, d.s, events).tasks[0].input == "edited"


def test_a_non_retryable_error_skips_the_remaining_tries() -> None:
    d = Driver(workflow([{"id": "a", "type": "transform"}]))
    d.send(Start(execution_id=E))
    err = ErrorInfo(message="bad request", type="NonRetryableError")
    events = d.send(Fail(node_id=n("a"), lease=d.start_node("a"), error=err, retryable=False))
    assert tags(events) == ["node.failed:a", "node.dead_lettered:a", "execution.failed:a"]


def test_continue_on_fail_hands_the_error_to_the_children() -> None:
    policy = {"maxAttempts": 1, "continueOnFail": True}
    d = Driver(
        workflow(
            [
                {"id": "a", "type": "http", "retryPolicy": policy, "outputs": ["b"]},
                {"id": "b", "type": "transform"},
            ]
        )
    )
    d.send(Start(execution_id=E))
    err = ErrorInfo(message="down", type="HTTPError")
    events = d.send(Fail(node_id=n("a"), lease=d.start_node("a"), error=err))
    assert tags(events) == ["node.failed:a", "node.queued:b"]
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert task.input == {
        "error": {"message": "down", "type": "HTTPError"},
        "_metadata": {"continuedOnFail": True, "attempts": 1},
    }


def test_pause_starts_nothing_new_and_resume_requeues_what_did_not_start() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    lease = d.start_node("s")
    assert tags(d.send(Pause())) == ["execution.paused"]
    # The running node finishes and is recorded, but its children wait.
    assert tags(d.send(Complete(node_id=n("s"), lease=lease, output=1))) == ["node.completed:s"]
    with pytest.raises(StateConflict):
        d.send(Pause())
    assert tags(d.send(Resume())) == ["execution.resumed", "node.queued:a", "node.queued:b"]


def test_a_task_that_arrives_while_paused_is_queued_again_on_resume() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    queued_seq = d.s.node(n("s")).queued_seq
    d.send(Pause())
    assert d.send(MarkStarted(node_id=n("s"), queued_seq=queued_seq)) == []
    assert tags(d.send(Resume())) == ["execution.resumed", "node.queued:s"]
    assert d.send(MarkStarted(node_id=n("s"), queued_seq=queued_seq)) == []  # the old task is stale now


def test_resume_never_cuts_a_backoff_short() -> None:
    policy = {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 1_000}}
    d = Driver(workflow([{"id": "a", "type": "transform", "retryPolicy": policy}]))
    d.send(Start(execution_id=E))
    d.send(Fail(node_id=n("a"), lease=d.start_node("a"), error=ErrorInfo(message="x")))
    d.send(Pause())
    d.now = 1_500
    assert d.send(FireTimer(node_id=n("a"), attempt=1)) == []  # paused: the due timer waits
    assert tags(d.send(Resume())) == ["execution.resumed"]  # not due yet at 1 500 < 2 000
    d.send(Pause())
    d.now = 2_500
    assert tags(d.send(Resume())) == ["execution.resumed", "node.queued:a"]


def test_cancel_resolves_every_unfinished_node_and_discards_late_results() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    lease = d.start_node("s")
    events = d.send(Cancel())
    assert tags(events) == [
        "execution.cancelled",
        "node.cancelled:s",
        "node.cancelled:a",
        "node.cancelled:b",
        "node.cancelled:j",
    ]
    assert d.send(Complete(node_id=n("s"), lease=lease, output=1)) == []
    with pytest.raises(StateConflict):
        d.send(Resume())


def test_max_concurrency_limits_the_nodes_queued_at_once() -> None:
    nodes = [{"id": "s", "type": "transform", "outputs": ["a", "b", "c"]}]
    nodes += [{"id": x, "type": "transform"} for x in "abc"]
    d = Driver(workflow(nodes, maxConcurrency=2))
    d.send(Start(execution_id=E))
    assert run(d, "s") == ["node.completed:s", "node.queued:a", "node.queued:b"]
    assert run(d, "a") == ["node.completed:a", "node.queued:c"]


def test_a_delay_waits_on_a_timer_without_a_worker() -> None:
    d = Driver(
        workflow(
            [
                {"id": "wait", "type": "delay", "config": {"ms": 250}, "outputs": ["b"]},
                {"id": "b", "type": "transform"},
            ]
        )
    )
    events = d.send(Start(execution_id=E, input={"x": 1}))
    assert tags(events) == ["execution.started", "node.started:wait", "node.waiting:wait"]
    (timer,) = effects(d.wf, None, d.s, events).timers
    assert timer.due == 1_250
    d.now = 1_250
    events = d.send(FireTimer(node_id=n("wait"), attempt=1))
    assert tags(events) == ["node.completed:wait", "node.queued:b"]
    assert d.s.node(n("wait")).output == {"x": 1}


def test_cancel_drops_the_timers_of_waiting_nodes() -> None:
    d = Driver(workflow([{"id": "wait", "type": "delay", "config": {"ms": 250}}]))
    d.send(Start(execution_id=E))
    before = d.s
    events = d.send(Cancel())
    assert effects(d.wf, before, d.s, events).dropped_timers == ["e1|wait|1"]


def test_a_quick_node_records_its_start_and_result_in_one_decision_under_its_own_lease() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    queued_seq = d.s.node(n("s")).queued_seq
    d.now = 1_040
    start = MarkStarted(node_id=n("s"), queued_seq=queued_seq, lease="mine", first_only=True, started_at=1_010)
    assert tags(d.send(start)) == ["node.started:s"]
    assert tags(d.send(Complete(node_id=n("s"), lease="mine", output=1)))[0] == "node.completed:s"
    assert d.s.node(n("s")).started_at == 1_010  # when it really started, not when that was recorded


def test_a_first_start_does_not_take_over_a_node_that_a_reclaim_restarted() -> None:
    d = Driver(workflow(DIAMOND))
    d.send(Start(execution_id=E))
    queued_seq = d.s.node(n("s")).queued_seq
    reclaimer = d.start_node("s")
    late = MarkStarted(node_id=n("s"), queued_seq=queued_seq, lease="late", first_only=True)
    assert d.send(late) == []
    assert d.send(Complete(node_id=n("s"), lease="late", output="late")) == []
    assert d.s.node(n("s")).lease == reclaimer


def test_a_task_whose_workers_kept_dying_fails_its_try_and_is_retried() -> None:
    d = Driver(workflow([{"id": "a", "type": "transform"}]))
    d.send(Start(execution_id=E))
    queued_seq = d.s.node(n("a")).queued_seq
    d.start_node("a")
    events = d.send(WorkerLost(node_id=n("a"), queued_seq=queued_seq, deliveries=5))
    assert tags(events) == ["node.failed:a"]
    assert events[0].will_retry and events[0].error.type == "WorkerLost"  # type: ignore[union-attr]
    assert d.send(WorkerLost(node_id=n("a"), queued_seq=queued_seq, deliveries=5)) == []  # settled once


def test_a_lost_worker_of_a_paused_execution_waits_for_the_resume() -> None:
    d = Driver(workflow([{"id": "a", "type": "transform"}]))
    d.send(Start(execution_id=E))
    queued_seq = d.s.node(n("a")).queued_seq
    d.start_node("a")
    d.send(Pause())
    assert d.send(WorkerLost(node_id=n("a"), queued_seq=queued_seq, deliveries=5)) == []
