"""Pure folding of log events into read-model rows, with the core's ``evolve`` (no rule is restated here).

An execution's rows are the projection of its ``ExecutionState``: the stored rows are turned back into the state
the core would hold after ``last_seq`` events, the next events are folded with ``evolve`` and the state is turned
into rows again. So a batch that holds only later events of an execution writes the same values as a fold of the
whole log, and a column an earlier batch set is kept unless an event changes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from spane_core.events import DeadLetterDeleted, Envelope, ErrorInfo, NodeDeadLettered, NodeQueued
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.keys import DEFAULT_PRIORITY
from spane_core.state import ExecutionState, ExecutionStatus, NodeState, NodeStatus, evolve_owned, own
from spane_core.workflow_events import WorkflowDeleted, WorkflowEvent, WorkflowRegistered


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    parent_execution_id: str | None
    parent_node_id: str | None
    depth: int
    idempotency_key: str | None
    started_at: int  # epoch ms, like every time in this module
    finished_at: int | None
    updated_at: int
    last_seq: int
    priority: int = DEFAULT_PRIORITY
    run_at: int | None = None
    deadline: int | None = None
    rerun_of: str | None = None


@dataclass(frozen=True, slots=True)
class NodeRunRow:
    execution_id: str
    node_id: str
    status: str
    attempts: int
    started_at: int | None
    finished_at: int | None
    output: Any
    error: dict[str, Any] | None
    last_seq: int


@dataclass(slots=True)
class DeadLetterRow:
    id: str
    execution_id: str
    workflow_id: str
    node_id: str
    attempt: int
    error: dict[str, Any]
    input: Any
    failed_at: int
    resolved_at: int | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """A node's first queueing in a batch: its dead letters of earlier batches and attempts are resolved."""

    execution_id: str
    node_id: str
    attempt: int
    at: int


@dataclass(slots=True)
class Projection:
    execution: ExecutionRow
    nodes: list[NodeRunRow]
    dead_letters: list[DeadLetterRow]
    requeues: list[Requeue]
    state: ExecutionState  # after the events: what the rows were made from


def node_of(envelope: Envelope) -> NodeId | None:
    """The node a node event is about (``execution.failed`` names a node too, but is the execution's)."""
    if envelope.type.startswith("execution."):
        return None
    node_id: NodeId | None = getattr(envelope.event, "node_id", None)
    return node_id


def _error(info: ErrorInfo | None) -> dict[str, Any] | None:
    return None if info is None else {"message": info.message, "type": info.type}


def _error_info(value: dict[str, Any] | None) -> ErrorInfo | None:
    return None if value is None else msgspec.convert(value, ErrorInfo)


def state_from_rows(row: ExecutionRow, nodes: Iterable[NodeRunRow]) -> ExecutionState:
    """The state after ``row.last_seq`` events, as far as ``evolve`` needs it to apply the next ones."""
    return ExecutionState(
        execution_id=ExecutionId(row.execution_id),
        workflow_id=WorkflowId(row.workflow_id),
        workflow_version=row.workflow_version,
        status=ExecutionStatus(row.status),
        seq=row.last_seq,
        input=row.input,
        output=row.output,
        error=_error_info(row.error),
        parent_execution_id=None if row.parent_execution_id is None else ExecutionId(row.parent_execution_id),
        parent_node_id=None if row.parent_node_id is None else NodeId(row.parent_node_id),
        depth=row.depth,
        idempotency_key=row.idempotency_key,
        started_at=row.started_at,
        finished_at=row.finished_at,
        priority=row.priority,
        run_at=row.run_at,
        deadline=row.deadline,
        rerun_of=None if row.rerun_of is None else ExecutionId(row.rerun_of),
        nodes={
            NodeId(n.node_id): NodeState(
                status=NodeStatus(n.status),
                attempt=n.attempts,
                started_at=n.started_at,
                finished_at=n.finished_at,
                output=n.output,
                error=_error_info(n.error),
            )
            for n in nodes
        },
    )


def _execution_row(state: ExecutionState, updated_at: int, last_seq: int) -> ExecutionRow:
    return ExecutionRow(
        execution_id=state.execution_id,
        workflow_id=state.workflow_id,
        workflow_version=state.workflow_version,
        status=state.status.value,
        input=state.input,
        output=state.output,
        error=_error(state.error),
        parent_execution_id=state.parent_execution_id,
        parent_node_id=state.parent_node_id,
        depth=state.depth,
        idempotency_key=state.idempotency_key,
        started_at=state.started_at,
        finished_at=state.finished_at,
        updated_at=updated_at,
        last_seq=last_seq,
        priority=state.priority,
        run_at=state.run_at,
        deadline=state.deadline,
        rerun_of=state.rerun_of,
    )


def _node_row(state: ExecutionState, node_id: NodeId, last_seq: int) -> NodeRunRow:
    node = state.node(node_id)
    return NodeRunRow(
        execution_id=state.execution_id,
        node_id=node_id,
        status=node.status.value,
        attempts=node.attempt,
        started_at=node.started_at,
        finished_at=node.finished_at,
        output=node.output,
        error=_error(node.error),
        last_seq=last_seq,
    )


def project(state: ExecutionState | None, envelopes: Sequence[Envelope]) -> Projection:
    """Fold ``envelopes`` (the next events of one execution, in order, at least one) onto ``state``."""
    touched: dict[NodeId, int] = {}
    dead_letters: list[DeadLetterRow] = []
    requeues: dict[NodeId, Requeue] = {}
    state = None if state is None else own(state)  # one copy per batch, evolved in place (the cache keeps the old)
    for envelope in envelopes:
        event = envelope.event
        state = evolve_owned(state, event, envelope.at)
        if (node_id := node_of(envelope)) is not None:
            touched[node_id] = envelope.seq
        if isinstance(event, NodeDeadLettered):
            dead_letters.append(
                DeadLetterRow(
                    id=f"{envelope.execution_id}:{event.node_id}:{event.attempt}",
                    execution_id=envelope.execution_id,
                    workflow_id=envelope.workflow_id,
                    node_id=event.node_id,
                    attempt=event.attempt,
                    error={"message": event.error.message, "type": event.error.type},
                    input=event.input,
                    failed_at=envelope.at,
                )
            )
        elif isinstance(event, NodeQueued):
            for letter in dead_letters:
                if letter.node_id == event.node_id and letter.resolved_at is None:
                    letter.resolved_at = envelope.at
            first = Requeue(envelope.execution_id, event.node_id, event.attempt, envelope.at)
            requeues.setdefault(event.node_id, first)
        elif isinstance(event, DeadLetterDeleted):  # leaves the queue as a retried one does
            for letter in dead_letters:
                if letter.node_id == event.node_id and letter.attempt == event.attempt:
                    letter.resolved_at = envelope.at
            deleted = Requeue(envelope.execution_id, event.node_id, event.attempt + 1, envelope.at)
            earlier = requeues.get(event.node_id)
            if earlier is None or earlier.attempt < deleted.attempt:
                requeues[event.node_id] = deleted
    assert state is not None, "project() needs at least one envelope"
    last = envelopes[-1]
    nodes = [_node_row(state, node_id, seq) for node_id, seq in touched.items()]
    return Projection(_execution_row(state, last.at, last.seq), nodes, dead_letters, list(requeues.values()), state)


@dataclass(slots=True)
class WorkflowRow:
    workflow_id: str
    updated_at: int
    last_pos: int
    deleted_at: int | None = None
    name: str | None = None  # the fields of the newest version registered in the batch, if any
    latest_version: int | None = None
    triggers: Any = None
    created_at: int | None = None  # the first registration in the batch


@dataclass(frozen=True, slots=True)
class VersionRow:
    workflow_id: str
    version: int
    definition: dict[str, Any]
    created_at: int


def project_workflows(events: Iterable[tuple[int, WorkflowEvent]]) -> tuple[list[WorkflowRow], list[VersionRow]]:
    """Fold registry events, each with its position in the registry stream, into one row per workflow."""
    rows: dict[str, WorkflowRow] = {}
    versions: list[VersionRow] = []
    for pos, event in sorted(events, key=lambda item: item[0]):
        row = rows.setdefault(event.workflow_id, WorkflowRow(event.workflow_id, event.at, pos))
        row.updated_at, row.last_pos = event.at, pos
        match event:
            case WorkflowRegistered():
                versions.append(VersionRow(event.workflow_id, event.version, event.definition, event.at))
                row.deleted_at = None
                if row.latest_version is None or event.version > row.latest_version:
                    row.name, row.latest_version = event.name, event.version
                    row.triggers = event.definition.get("triggers") or []
                if row.created_at is None:
                    row.created_at = event.at
            case WorkflowDeleted():
                row.deleted_at = event.at
    return sorted(rows.values(), key=lambda r: r.workflow_id), versions


def stream_pos(entry_id: str) -> int:
    """A stream entry id (``ms-seq``) as one orderable integer."""
    ms, _, seq = entry_id.partition("-")
    return int(ms) * 1_000_000 + min(int(seq or 0), 999_999)
