"""Spans made from an execution's log: one for the execution, one per node attempt, timed by the events' times.

``spans_for(before, run)`` reads a run of consecutive events (after the state ``before``, None from the start) and
returns the spans that the run ends: a node attempt's when it completes, fails or is cancelled, the execution's
when it finishes. It is pure, so that the projector may call it on every batch it folds, ``spane replay`` on a
whole log, and a test on golden events; with the ids of ``context`` the spans of one execution form one tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from spane_core.events import (
    Envelope,
    ErrorInfo,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    NodeCancelled,
    NodeCompleted,
    NodeDeadLettered,
    NodeFailed,
    NodeQueued,
    NodeSkipped,
    NodeStarted,
    NodeWaiting,
)
from spane_core.observe import context
from spane_core.state import ExecutionState, NodeStatus

Kind = Literal["execution", "node"]


# A span that ended with one of these statuses is marked as an error.
ERROR_STATUSES = frozenset({"failed", "retrying", "dead_lettered"})


@dataclass(slots=True)
class SpanRecord:
    """One span, or (``end`` None) an attempt still open at the end of the log, as ``spane replay`` shows it."""

    kind: Kind
    execution_id: str
    workflow_id: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start: int  # epoch ms
    end: int | None
    status: str  # the node's or execution's status that ended it (completed, failed, cancelled, ...)
    node_id: str | None = None
    attempt: int = 0
    workflow_version: int = 0
    error: ErrorInfo | None = None
    attributes: dict[str, str | int | bool] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"node {self.node_id}" if self.kind == "node" else f"execution {self.workflow_id}"

    @property
    def duration_ms(self) -> int | None:
        return None if self.end is None else self.end - self.start

    @property
    def is_error(self) -> bool:
        return self.status in ERROR_STATUSES

    def span_attributes(self, node_type: str | None) -> dict[str, str | int | bool]:
        """The span's attributes, whichever exporter sends it."""
        attrs: dict[str, str | int | bool] = {
            "spane.execution.id": self.execution_id,
            "spane.workflow.id": self.workflow_id,
            "spane.status": self.status,
            **self.attributes,
        }
        if self.kind == "node":
            attrs["spane.node.id"] = self.node_id or ""
            attrs["spane.node.attempt"] = self.attempt
            if node_type is not None:
                attrs["spane.node.type"] = node_type
        if self.error is not None:
            attrs["error.type"] = self.error.type
            attrs["spane.error.message"] = self.error.message
        return attrs


@dataclass(slots=True)
class _Open:
    attempt: int
    start: int
    waiting: bool = False


class _Scan:
    def __init__(self, before: ExecutionState | None, execution_id: str, traceparent: str | None) -> None:
        self.execution_id = execution_id
        self.workflow_id = before.workflow_id if before is not None else ""
        self.workflow_version = before.workflow_version if before is not None else 0
        ctx = context.parse(traceparent)
        self.trace_id = ctx.trace_id if ctx is not None else context.trace_id_of(execution_id)
        self.root = context.root_span_id(execution_id)
        self.root_parent = context.root_parent(execution_id, traceparent)
        self.started_at = before.started_at if before is not None else None
        self.open: dict[str, _Open] = {}
        self.attempts: dict[str, int] = {}
        if before is not None:
            for node_id, node in before.nodes.items():
                self.attempts[node_id] = node.attempt
                if node.status in (NodeStatus.RUNNING, NodeStatus.WAITING) and node.started_at is not None:
                    self.open[node_id] = _Open(node.attempt, node.started_at, node.status is NodeStatus.WAITING)
        self.out: list[SpanRecord] = []

    def node(self, node_id: str, attempt: int, start: int, end: int | None, status: str, **kw: object) -> SpanRecord:
        record = SpanRecord(
            kind="node", execution_id=self.execution_id, workflow_id=self.workflow_id, trace_id=self.trace_id,
            span_id=context.node_span_id(self.execution_id, node_id, attempt), parent_id=self.root,
            start=start, end=end, status=status, node_id=node_id, attempt=attempt,
            workflow_version=self.workflow_version,
        )  # fmt: skip
        for key, value in kw.items():
            setattr(record, key, value)
        return record

    def close(self, node_id: str, attempt: int | None, at: int, status: str, error: ErrorInfo | None = None) -> None:
        opened = self.open.pop(node_id, None)
        if attempt is None:
            if opened is None:
                return  # cancelled before it ran: no attempt to show
            attempt = opened.attempt
        start = opened.start if opened is not None and opened.attempt == attempt else at
        self.out.append(self.node(node_id, attempt, start, at, status, error=error))

    def apply(self, envelope: Envelope) -> None:
        at = envelope.at
        match envelope.event:
            case ExecutionStarted(workflow_id=workflow_id, workflow_version=version):
                self.workflow_id = workflow_id
                self.workflow_version = version
                self.started_at = at
            case NodeQueued(node_id=node_id, attempt=attempt):
                self.attempts[node_id] = attempt
                self.open.pop(node_id, None)
            case NodeStarted(node_id=node_id, attempt=attempt, started_at=started_at):
                opened = self.open.get(node_id)
                if opened is None or opened.attempt != attempt:
                    self.open[node_id] = _Open(attempt, started_at or at)
            case NodeWaiting(node_id=node_id):
                attempt = max(1, self.attempts.get(node_id, 0))
                opened = self.open.setdefault(node_id, _Open(attempt, at))
                opened.waiting = True
            case NodeCompleted(node_id=node_id, attempt=attempt):
                self.close(node_id, attempt, at, "completed")
            case NodeFailed(node_id=node_id, attempt=attempt, error=error, will_retry=True):
                self.close(node_id, attempt, at, "retrying", error)
            case NodeFailed(node_id=node_id, attempt=attempt, error=error, continued_on_fail=True):
                self.close(node_id, attempt, at, "failed", error)
            case NodeFailed(node_id=node_id, attempt=attempt, error=error):  # node.dead_lettered follows
                self.close(node_id, attempt, at, "dead_lettered", error)
            case NodeDeadLettered(node_id=node_id, error=error):
                self.close(node_id, None, at, "dead_lettered", error)
            case NodeCancelled(node_id=node_id):
                self.close(node_id, None, at, "cancelled")
            case NodeSkipped():
                pass
            case ExecutionCompleted():
                self.finish(at, "completed")
            case ExecutionFailed(error=error):
                self.finish(at, "failed", error)
            case ExecutionCancelled():
                self.finish(at, "cancelled")
            case _:
                pass

    def finish(self, at: int, status: str, error: ErrorInfo | None = None) -> None:
        self.out.append(
            SpanRecord(
                kind="execution", execution_id=self.execution_id, workflow_id=self.workflow_id,
                trace_id=self.trace_id, span_id=self.root, parent_id=self.root_parent,
                start=self.started_at if self.started_at is not None else at, end=at, status=status, error=error,
                workflow_version=self.workflow_version,
            )
        )  # fmt: skip


def spans_for(before: ExecutionState | None, run: Sequence[Envelope]) -> list[SpanRecord]:
    """The spans that ``run`` (consecutive events of one execution, after ``before``) ends, in order."""
    if not run:
        return []
    scan = _Scan(before, run[0].execution_id, _traceparent(before, run))
    for envelope in run:
        scan.apply(envelope)
    return scan.out


def timeline(log: Sequence[Envelope]) -> list[SpanRecord]:
    """Every node attempt and the execution of a whole log, in the order they began; those still open at its end
    have ``end`` None and the status ``running`` or ``waiting``."""
    if not log:
        return []
    scan = _Scan(None, log[0].execution_id, _traceparent(None, log))
    for envelope in log:
        scan.apply(envelope)
    records = list(scan.out)
    for node_id, opened in scan.open.items():
        status = "waiting" if opened.waiting else "running"
        records.append(scan.node(node_id, opened.attempt, opened.start, None, status))
    if not any(r.kind == "execution" for r in records):
        records.append(
            SpanRecord(
                kind="execution", execution_id=scan.execution_id, workflow_id=scan.workflow_id,
                trace_id=scan.trace_id, span_id=scan.root, parent_id=scan.root_parent,
                start=scan.started_at or log[0].at, end=None, status="running",
            )
        )  # fmt: skip
    records.sort(key=lambda r: (r.kind != "execution", r.start, r.end is None, r.end or 0))
    return records


def _traceparent(before: ExecutionState | None, run: Sequence[Envelope]) -> str | None:
    if before is not None and before.traceparent:
        return before.traceparent
    for envelope in run:
        if envelope.traceparent:
            return envelope.traceparent
        if isinstance(envelope.event, ExecutionStarted):
            return envelope.event.traceparent
    return None
