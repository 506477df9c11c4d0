"""Writes a batch of log entries into the read models, in one transaction, idempotently and in any order.

Each execution's events are archived (``ON CONFLICT DO NOTHING``) and then folded onto its stored rows in seq
order, from ``last_seq + 1`` on, only while the seqs are contiguous. Batches may come out of order (several
projectors share a stream; entries of a dead projector are reclaimed late): a later batch whose earlier events have
not arrived yet is only archived, and the batch that fills the gap folds every archived event after it. A replayed
batch folds nothing. A per-execution advisory lock makes concurrent batches of one execution take turns.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from spane_core.codec import decode_envelopes, encode
from spane_core.events import Envelope
from spane_core.lru import ByteLRU
from spane_core.readmodel import writes
from spane_core.state import FINISHED_EXECUTION, ExecutionState
from spane_core.workflow_events import WorkflowEvent

from spane_projector.convert import (
    envelope_from_body,
    from_json,
    json_text,
    opt_json_text,
    opt_ms,
    opt_time,
    to_ms,
    to_time,
)
from spane_projector.rows import (
    ExecutionRow,
    NodeRunRow,
    Projection,
    node_of,
    project,
    project_workflows,
    state_from_rows,
)

if TYPE_CHECKING:
    from spane_core.readmodel.schema import Conn

EXECUTION_LOCKS = 0x5350  # advisory lock class of executions (key: a hash of the id)
REGISTRY_LOCK = (0x5351, 0)


def _lock_key(execution_id: str) -> int:
    return zlib.crc32(execution_id.encode()) - 2**31


def _execution_row(r: asyncpg.Record) -> ExecutionRow:
    return ExecutionRow(
        execution_id=r["execution_id"],
        workflow_id=r["workflow_id"],
        workflow_version=r["workflow_version"],
        status=r["status"],
        input=None,  # not read back: execution.started sets it and nothing changes it
        output=from_json(r["output"]),
        error=from_json(r["error"]),
        parent_execution_id=r["parent_execution_id"],
        parent_node_id=r["parent_node_id"],
        depth=r["depth"],
        idempotency_key=r["idempotency_key"],
        started_at=to_ms(r["started_at"]),
        finished_at=opt_ms(r["finished_at"]),
        updated_at=to_ms(r["updated_at"]),
        last_seq=r["last_seq"],
        priority=r["priority"],
        run_at=opt_ms(r["run_at"]),
        deadline=opt_ms(r["deadline"]),
        rerun_of=r["rerun_of"],
    )


def _node_row(r: asyncpg.Record) -> NodeRunRow:
    return NodeRunRow(
        execution_id=r["execution_id"],
        node_id=r["node_id"],
        status=r["status"],
        attempts=r["attempts"],
        started_at=opt_ms(r["started_at"]),
        finished_at=opt_ms(r["finished_at"]),
        output=from_json(r["output"]),
        error=from_json(r["error"]),
        last_seq=r["last_seq"],
    )


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column, the shape ``unnest`` takes."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    return columns or [[] for _ in range(width)]


class FoldCache:
    """The state each execution was left in by this projector's last batch of it (bounded, least recent out).

    A batch whose execution's stored ``last_seq`` is the one cached folds on from the cached state instead of
    reading the execution's node rows back: the rows were made from that very state, under the same lock.
    """

    def __init__(self, max_states: int = 1024, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._states: ByteLRU[str, ExecutionState] = ByteLRU(max_bytes, max_states)

    def get(self, execution_id: str, last_seq: int) -> ExecutionState | None:
        state = self._states.get(execution_id)
        return state if state is not None and state.seq == last_seq else None

    def put(self, state: ExecutionState) -> None:
        self._states.pop(state.execution_id)
        if state.status in FINISHED_EXECUTION:
            return  # rarely folded again (a retry from the dead letters reads its rows back)
        # The encoded size is a measure of its weight: decoded, it takes a few times this.
        self._states.put(state.execution_id, state, len(encode(state)))


# Told, once the batch's transaction committed, of each run of events folded and the state it was folded onto.
Folded = Callable[[ExecutionState | None, list[Envelope]], None]


async def write_commits(
    conn: Conn, envelopes: Iterable[Envelope], cache: FoldCache | None = None, on_folded: Folded | None = None
) -> int:
    """Apply commits' envelopes in one transaction; returns how many events were folded into rows."""
    by_execution: dict[str, dict[int, Envelope]] = {}
    for envelope in envelopes:
        by_execution.setdefault(envelope.execution_id, {})[envelope.seq] = envelope
    if not by_execution:
        return 0
    ids = sorted(by_execution, key=_lock_key)
    async with conn.transaction():
        await conn.execute(writes.LOCK_EXECUTIONS, EXECUTION_LOCKS, [_lock_key(i) for i in ids])
        stored = {r["execution_id"]: _execution_row(r) for r in await conn.fetch(writes.SELECT_EXECUTIONS, ids)}
        runs = await _archive_and_runs(conn, by_execution, {i: row.last_seq for i, row in stored.items()})
        if not runs:
            return 0
        cached = {i: state for i in runs if i in stored and cache and (state := cache.get(i, stored[i].last_seq))}
        wanted = {
            (i, node_id) for i in runs if i in stored and i not in cached for e in runs[i] if (node_id := node_of(e))
        }
        nodes: dict[str, list[NodeRunRow]] = {}
        if wanted:
            for r in await conn.fetch(writes.SELECT_NODE_RUNS, *_columns(wanted, 2)):
                nodes.setdefault(r["execution_id"], []).append(_node_row(r))
        befores = {
            i: cached.get(i) or (state_from_rows(stored[i], nodes.get(i, ())) if i in stored else None) for i in runs
        }
        projections = [project(befores[i], run) for i, run in runs.items()]
        await _write(conn, projections)
    if cache is not None:  # committed: the states are now what the rows say
        for projection in projections:
            cache.put(projection.state)
    if on_folded is not None:
        for i, run in runs.items():
            on_folded(befores[i], run)
    return sum(len(run) for run in runs.values())


async def _archive_and_runs(
    conn: Conn, by_execution: dict[str, dict[int, Envelope]], done: dict[str, int]
) -> dict[str, list[Envelope]]:
    """Archive the batch's new events; per execution, return the events to fold now: those right after its
    ``last_seq`` (``done``), while contiguous.

    Usually the batch's own events, none of them archived yet: each contiguous run of them becomes one row, COPYed
    in. An execution with archived events after its ``last_seq`` was reached by an earlier batch that came early
    (several projectors share a stream; a dead one's entries are reclaimed late): its events are inserted one per
    row, skipping those archived already (a row that starts at a seq covers it), and its run is read back from the
    archive, so that a batch that fills a gap folds every event after it.
    """
    after = {i: done.get(i, 0) for i in by_execution}
    early = {r[0] for r in await conn.fetch(writes.SELECT_HAS_LATER, *_columns(after.items(), 2))}
    new: list[list[Envelope]] = []
    maybe_archived: list[list[Envelope]] = []
    runs: dict[str, list[Envelope]] = {}
    for execution_id, seqs in by_execution.items():
        fresh = [seqs[s] for s in sorted(seqs) if s > after[execution_id]]  # a replayed batch has none
        if execution_id in early:
            maybe_archived += ([e] for e in fresh)
            continue
        pieces = _contiguous(fresh)
        new += pieces
        if pieces and pieces[0][0].seq == after[execution_id] + 1:
            runs[execution_id] = pieces[0]  # up to a gap: what follows waits for the batch that fills it
    if new:
        await conn.copy_records_to_table("event_runs", records=map(_run_record, new), columns=writes.EVENT_RUN_COLUMNS)
    if maybe_archived:
        rows = _columns(map(_run_record, maybe_archived), len(writes.EVENT_RUN_COLUMNS))
        await conn.execute(writes.INSERT_EVENT_RUNS, *rows)
        gaps = {i: after[i] for i in early}
        archived: dict[str, dict[int, Envelope]] = {}
        for data, body in await conn.fetch(writes.SELECT_ARCHIVED_AFTER, *_columns(gaps.items(), 2)):
            for envelope in decode_envelopes(data) if data is not None else [envelope_from_body(from_json(body))]:
                archived.setdefault(envelope.execution_id, {})[envelope.seq] = envelope
        for execution_id, seqs in archived.items():
            fresh = [seqs[s] for s in sorted(seqs) if s > gaps[execution_id]]
            if fresh and fresh[0].seq == gaps[execution_id] + 1:
                runs[execution_id] = _contiguous(fresh)[0]
    return runs


def _contiguous(envelopes: list[Envelope]) -> list[list[Envelope]]:
    """``envelopes`` (of one execution, in seq order) cut where a seq is missing."""
    out: list[list[Envelope]] = []
    for envelope in envelopes:
        if out and envelope.seq == out[-1][-1].seq + 1:
            out[-1].append(envelope)
        else:
            out.append([envelope])
    return out


def _run_record(run: list[Envelope]) -> tuple[Any, ...]:
    first, last = run[0], run[-1]
    return (first.execution_id, first.seq, last.seq, first.workflow_id, to_time(last.at), encode(run))


async def _write(conn: Conn, projections: list[Projection]) -> None:
    executions = (
        (
            x.execution_id, x.workflow_id, x.workflow_version, x.status, opt_json_text(x.input),
            opt_json_text(x.output), opt_json_text(x.error), x.parent_execution_id, x.parent_node_id, x.depth,
            x.idempotency_key, to_time(x.started_at), opt_time(x.finished_at), to_time(x.updated_at), x.last_seq,
            x.priority, opt_time(x.run_at), opt_time(x.deadline), x.rerun_of,
        )
        for x in (p.execution for p in projections)
    )  # fmt: skip
    await conn.execute(writes.UPSERT_EXECUTIONS, *_columns(executions, 19))
    node_rows = (
        (
            n.execution_id, n.node_id, n.status, n.attempts, opt_time(n.started_at), opt_time(n.finished_at),
            opt_json_text(n.output), opt_json_text(n.error), n.last_seq,
        )
        for p in projections
        for n in p.nodes
    )  # fmt: skip
    await conn.execute(writes.UPSERT_NODE_RUNS, *_columns(node_rows, 9))
    dead = [
        (
            d.id, d.execution_id, d.workflow_id, d.node_id, d.attempt, json_text(d.error), opt_json_text(d.input),
            to_time(d.failed_at), opt_time(d.resolved_at),
        )
        for p in projections
        for d in p.dead_letters
    ]  # fmt: skip
    if dead:
        await conn.execute(writes.INSERT_DEAD_LETTERS, *_columns(dead, 9))
    requeues = [(q.execution_id, q.node_id, q.attempt, to_time(q.at)) for p in projections for q in p.requeues]
    if requeues:
        await conn.execute(writes.RESOLVE_DEAD_LETTERS, *_columns(requeues, 4))


async def write_workflow_events(conn: Conn, events: Iterable[tuple[int, WorkflowEvent]]) -> int:
    """Apply registry events, each with its stream position (``rows.stream_pos``), in one transaction."""
    batch = list(events)
    workflows, versions = project_workflows(batch)
    if not workflows:
        return 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *REGISTRY_LOCK)
        version_rows = ((v.workflow_id, v.version, json_text(v.definition), to_time(v.created_at)) for v in versions)
        await conn.execute(writes.INSERT_WORKFLOW_VERSIONS, *_columns(version_rows, 4))
        workflow_rows = (
            (
                w.workflow_id, w.name, w.latest_version, opt_json_text(w.triggers), opt_time(w.created_at),
                to_time(w.updated_at), opt_time(w.deleted_at), w.last_pos,
            )
            for w in workflows
        )  # fmt: skip
        await conn.execute(writes.UPSERT_WORKFLOWS, *_columns(workflow_rows, 8))
    return len(batch)
