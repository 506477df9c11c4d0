"""Abort: the store refused for good to record a transition, so the execution fails with an internal error."""

from __future__ import annotations

import pytest
from spane_core.commands import Abort, Complete, Start
from spane_core.errors import StateConflict
from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, fold

from .helpers import Driver, tags, workflow

WF = workflow([{"id": "a", "type": "transform", "outputs": ["b"]}, {"id": "b", "type": "transform"}])
ERROR = ErrorInfo(message="internal error: the store refused ...", type="InternalError")
START = Start(execution_id=ExecutionId("e1"), input={"x": 1})


def test_a_running_execution_fails_with_the_error_and_late_results_start_nothing() -> None:
    d = Driver(WF)
    d.send(START)
    lease = d.start_node("a")
    assert tags(d.send(Abort(ERROR))) == ["execution.failed"]
    assert d.s.status is ExecutionStatus.FAILED and d.s.error == ERROR
    assert tags(d.send(Complete(node_id=NodeId("a"), lease=lease, output=1))) == ["node.completed:a"]
    assert d.s.node(NodeId("b")).status == "pending"
    assert fold(d.log) == d.s


def test_a_refused_start_is_recorded_as_a_start_that_failed() -> None:
    d = Driver(WF)
    assert tags(d.send(Abort(ERROR, start=START))) == ["execution.started", "execution.failed"]
    assert d.s.status is ExecutionStatus.FAILED and d.s.input == {"x": 1} and d.s.nodes == {}


def test_a_finished_execution_is_left_as_it_is() -> None:
    d = Driver(WF)
    d.send(START)
    d.send(Abort(ERROR))
    assert d.send(Abort(ERROR)) == []
    with pytest.raises(StateConflict):
        Driver(WF).send(Abort(ERROR))  # no execution and no start to record
