"""Logs of executions made by the pure core, for the tests of spans, replay and metrics."""

from __future__ import annotations

from typing import Any

from spane_core.commands import Complete, Fail, FireTimer, Start
from spane_core.events import Envelope, ErrorInfo
from spane_core.ids import ExecutionId, NodeId
from spane_core.observe.context import start_context

from tests.unit.helpers import Driver, workflow

DIAMOND: list[dict[str, Any]] = [
    {"id": "start", "type": "transform", "outputs": ["a", "b"]},
    {"id": "a", "type": "http", "config": {"url": "https://example.com"}, "outputs": ["join"]},
    {"id": "b", "type": "transform", "outputs": ["join"]},
    {"id": "join", "type": "transform"},
]  # fmt: skip


def run(node_id: str, d: Driver, *, fail: bool = False, took: int = 5) -> None:
    lease = d.start_node(node_id)
    d.now += took
    if fail:
        d.send(Fail(node_id=NodeId(node_id), lease=lease, error=ErrorInfo(message="HTTP 503", type="HttpStatusError")))
    else:
        d.send(Complete(node_id=NodeId(node_id), lease=lease, output={"node": node_id}))


def diamond_with_retry(traced: bool = True) -> list[Envelope]:
    """start; a fails once and is retried after its backoff; b; join; completed."""
    d = Driver(workflow(DIAMOND))
    tp = start_context("e1") if traced else None
    d.send(Start(execution_id=ExecutionId("e1"), input={"x": 1}, traceparent=tp))
    d.now += 1
    run("start", d)
    d.now += 2
    run("a", d, fail=True, took=7)
    run("b", d, took=3)
    d.now += 100
    d.send(FireTimer(node_id=NodeId("a"), attempt=1))
    run("a", d, took=11)
    d.now += 1
    run("join", d)
    return d.log
