"""The execution options' rules: given a history, when a command, then these events (and these timers)."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.commands import (
    Cancel,
    Complete,
    FireExecutionTimer,
    Pause,
    ReusedNode,
    SetTimeout,
    Start,
)
from spane_core.effects import effects, timer_command
from spane_core.errors import InvalidInput, StateConflict
from spane_core.events import ExecutionStarted, NodeCompleted
from spane_core.execution_options import ExecutionOptions, Rerun, read_options, read_wait_ms, start_command
from spane_core.ids import ExecutionId, NodeId
from spane_core.rerun import reused_nodes
from spane_core.state import ExecutionStatus, NodeStatus, fold

from .helpers import Driver, tags, workflow

E = ExecutionId("e1")
CHAIN: list[dict[str, Any]] = [
    {"id": "a", "type": "transform", "outputs": ["b"]},
    {"id": "b", "type": "transform", "outputs": ["c"]},
    {"id": "c", "type": "transform"},
]


def n(node_id: str) -> NodeId:
    return NodeId(node_id)


def test_a_timeout_sets_a_deadline_timer_that_fails_the_execution_and_cancels_its_running_nodes() -> None:
    d = Driver(workflow(CHAIN))
    events = d.send(Start(execution_id=E, timeout_ms=500))
    assert d.s.deadline == 1_500
    (timer,) = effects(d.wf, None, d.s, events).timers
    assert timer_command(timer.member) == (E, FireExecutionTimer(kind="deadline", due=1_500))
    lease = d.start_node("a")
    d.now = 1_500
    before = d.s
    events = d.send(FireExecutionTimer(kind="deadline", due=1_500))
    assert tags(events) == ["execution.failed", "node.cancelled:a", "node.cancelled:b", "node.cancelled:c"]
    assert d.s.status is ExecutionStatus.FAILED and d.s.error is not None
    assert d.s.error.type == "ExecutionTimeout"
    assert timer.member in effects(d.wf, before, d.s, events).dropped_timers
    # The running node's late result is discarded; nothing new starts.
    assert d.send(Complete(node_id=n("a"), lease=lease, output=1)) == []
    assert d.s.node(n("b")).status is NodeStatus.CANCELLED


def test_the_definition_timeout_applies_unless_the_start_gives_one() -> None:
    wf = workflow(CHAIN, timeoutMs=1000)
    assert start_command(E, wf, None, None, ExecutionOptions()).timeout_ms == 1000
    assert start_command(E, wf, None, None, ExecutionOptions(timeout_ms=50)).timeout_ms == 50


def test_a_moved_deadline_makes_the_old_timer_stale_and_a_finished_execution_refuses_it() -> None:
    d = Driver(workflow(CHAIN))
    d.send(Start(execution_id=E, timeout_ms=500))
    d.now = 1_200
    before = d.s
    events = d.send(SetTimeout(timeout_ms=10_000))
    assert tags(events) == ["execution.deadline_set"] and d.s.deadline == 11_200
    eff = effects(d.wf, before, d.s, events)
    assert [t.due for t in eff.timers] == [11_200] and len(eff.dropped_timers) == 1
    assert d.send(FireExecutionTimer(kind="deadline", due=1_500)) == []  # the old one, stale
    with pytest.raises(InvalidInput):
        d.send(SetTimeout(timeout_ms=0))
    d.send(Cancel())
    with pytest.raises(StateConflict):
        d.send(SetTimeout(timeout_ms=1000))


def test_a_run_at_start_is_scheduled_until_its_timer_and_runs_then() -> None:
    d = Driver(workflow(CHAIN))
    events = d.send(Start(execution_id=E, run_at=5_000, timeout_ms=100))
    assert tags(events) == ["execution.started"] and d.s.status is ExecutionStatus.SCHEDULED
    assert sorted((t.kind, t.due) for t in effects(d.wf, None, d.s, events).timers) == [
        ("deadline", 5_100),
        ("start", 5_000),
    ]
    with pytest.raises(StateConflict):
        d.send(Pause())
    d.now = 5_000
    assert d.state is not None
    assert tags(d.send(FireExecutionTimer(kind="start", due=5_000))) == ["execution.due", "node.queued:a"]
    assert d.state.status.value == "running" and d.state.started_at == 5_000
    assert d.send(FireExecutionTimer(kind="start", due=5_000)) == []  # fired twice: once


def test_a_cancelled_scheduled_execution_never_starts() -> None:
    d = Driver(workflow(CHAIN))
    d.send(Start(execution_id=E, run_at=5_000))
    before = d.s
    events = d.send(Cancel())
    assert tags(events) == ["execution.cancelled", "node.cancelled:a", "node.cancelled:b", "node.cancelled:c"]
    assert effects(d.wf, before, d.s, events).dropped_timers
    assert d.send(FireExecutionTimer(kind="start", due=5_000)) == []


def test_every_task_carries_the_execution_priority() -> None:
    d = Driver(workflow(CHAIN))
    events = d.send(Start(execution_id=E, priority=9))
    assert [t.priority for t in effects(d.wf, None, d.s, events).tasks] == [9]
    before = d.s
    lease = d.start_node("a")
    before = d.s
    events = d.send(Complete(node_id=n("a"), lease=lease))
    assert [t.priority for t in effects(d.wf, before, d.s, events).tasks] == [9]
    assert fold(d.log) == d.s


def test_a_rerun_from_a_node_reuses_what_is_not_downstream_of_it() -> None:
    first = Driver(workflow(CHAIN))
    first.send(Start(execution_id=E, input=1))
    first.send(Complete(node_id=n("a"), lease=first.start_node("a"), output="A"))
    first.send(Complete(node_id=n("b"), lease=first.start_node("b"), output="B"))
    kept = reused_nodes(first.s, first.wf, n("c"))
    assert [r.node_id for r in kept] == ["a", "b"]
    with pytest.raises(InvalidInput):
        reused_nodes(first.s, first.wf, n("nope"))
    d = Driver(workflow(CHAIN))
    rerun = Rerun(of=ExecutionId("e0"), from_node=n("c"), reused=kept)
    events = d.send(start_command(E, d.wf, 1, None, ExecutionOptions(), rerun))
    assert tags(events) == ["execution.started", "node.completed:a", "node.completed:b", "node.queued:c"]
    assert isinstance(events[0], ExecutionStarted) and events[0].rerun_of == "e0" and events[0].from_node == "c"
    assert all(e.reused_from == "e0" for e in events if isinstance(e, NodeCompleted))
    assert d.s.node(n("b")).output == "B"
    assert fold(d.log) == d.s


def test_reused_nodes_keep_their_branch_choice() -> None:
    d = Driver(workflow([{"id": "c", "type": "condition", "outputs": ["x", "y"]}, {"id": "x", "type": "transform"},
                         {"id": "y", "type": "transform"}]))  # fmt: skip
    kept = (ReusedNode(node_id=n("c"), output=1, next_nodes=[n("x")]),)
    events = d.send(Start(execution_id=E, reused=kept, rerun_of=ExecutionId("e0"), from_node=n("x")))
    assert tags(events) == ["execution.started", "node.completed:c", "node.skipped:y", "node.queued:x"]


@pytest.mark.parametrize(
    ("priority", "timeout_ms", "run_at", "field"),
    [
        (0, None, None, "priority"),
        (11, None, None, "priority"),
        ("5", None, None, "priority"),
        (True, None, None, "priority"),
        (None, 0, None, "timeoutMs"),
        (None, "10", None, "timeoutMs"),
        (None, None, "2026-01-01T00:00:00", "runAt"),  # no zone
        (None, None, "1970-01-01T00:00:00Z", "runAt"),  # past
        (None, None, "tomorrow", "runAt"),
        (None, None, 5, "runAt"),
    ],
)
def test_bad_options_name_their_field(priority: object, timeout_ms: object, run_at: object, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        read_options(priority, timeout_ms, run_at, now=1_000)
    assert [e.path for e in raised.value.errors] == [field]


def test_good_options_are_read() -> None:
    options = read_options(10, 250, "2030-01-01T00:00:00+01:00", now=1_000)
    assert options == ExecutionOptions(priority=10, timeout_ms=250, run_at=1_893_452_400_000)


def test_a_definition_timeout_must_be_positive() -> None:
    from spane_core.node_schemas import BUILTIN_NODE_TYPES
    from spane_core.validation import parse_definition

    raw = {"id": "wf", "name": "wf", "nodes": CHAIN}
    assert parse_definition({**raw, "timeoutMs": 250}, BUILTIN_NODE_TYPES).timeout_ms == 250
    with pytest.raises(InvalidInput) as raised:
        parse_definition({**raw, "timeoutMs": 0}, BUILTIN_NODE_TYPES)
    assert [e.path for e in raised.value.errors] == ["timeoutMs"]


@pytest.mark.parametrize(("value", "shown"), [(True, "a boolean"), ("x" * 10_000, "a string"), (0, "0"), (1.5, "1.5")])
def test_a_wrong_wait_ms_is_named_by_its_json_type_or_value(value: Any, shown: str) -> None:
    # It said "got True" (Python's spelling of JSON's true) and wrote a huge string whole into the message.
    with pytest.raises(InvalidInput) as refused:
        read_wait_ms(value)
    (problem,) = refused.value.errors
    assert problem.path == "waitMs" and problem.message.endswith(f"got {shown}")
