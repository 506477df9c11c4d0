"""The API's reads of the Postgres read models that the projector writes (the API never writes them): the
statements are the core's (``spane_core.readmodel.reads``); this module runs them and turns rows into views.

An outage (no connection, the server shutting down or out of connections, tables not created yet) becomes
``StorageError`` (HTTP 503); any other database error is a bug and answers a logged 500.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
from spane_core.codec import decode_envelopes, envelope_to_dict, iso_ms
from spane_core.errors import MalformedInput, StorageError
from spane_core.readmodel import reads
from spane_core.state import ExecutionState, fold

from spane_api.schemas import (
    DeadLetter,
    ExecutionSummary,
    ExecutionView,
    NodeView,
    VersionInfo,
    WorkflowSummary,
)
from spane_api.views import error_view

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NUL = "\x00"  # Postgres text cannot hold it, so no stored id contains it


def iso(moment: dt.datetime) -> str:
    return iso_ms((moment - _EPOCH) // dt.timedelta(milliseconds=1))


def iso_opt(moment: dt.datetime | None) -> str | None:
    return None if moment is None else iso(moment)


@contextlib.asynccontextmanager
async def connection(db: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
    try:
        async with db.acquire() as conn:
            yield conn
    except (OSError, asyncpg.InterfaceError) as e:
        raise StorageError(f"the read-model database is unavailable: {e}") from e
    except asyncpg.CharacterNotInRepertoireError as e:
        # Postgres text cannot hold U+0000, so no stored id or cursor contains it: the request is malformed.
        raise MalformedInput("a parameter contains a character that no id holds (U+0000)") from e
    except asyncpg.PostgresError as e:
        if not _unavailable(e):
            raise  # a bug (a query the schema does not fit, say): a logged 500, not "try again later"
        raise StorageError(f"the read-model database is unavailable: {e}") from e


# SQLSTATE classes and codes that say "not now" rather than "wrong": connection exceptions, insufficient
# resources, operator intervention (shutdown, cancel), a transaction to retry, and tables the projector has not
# created yet (it migrates on start).
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
_UNAVAILABLE_CODES = ("40001", "40P01", "42P01")


def _unavailable(error: asyncpg.PostgresError) -> bool:
    code = str(getattr(error, "sqlstate", "") or "")
    return code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES


async def list_workflows(db: asyncpg.Pool) -> list[WorkflowSummary]:
    async with connection(db) as conn:
        rows = await conn.fetch(reads.SELECT_WORKFLOWS)
    return [
        WorkflowSummary(
            workflow_id=r["workflow_id"],
            name=r["name"] or r["workflow_id"],
            version=r["latest_version"],
            updated_at=iso(r["updated_at"]),
            triggers=r["triggers"] or [],
        )
        for r in rows
    ]


async def workflow_definition(db: asyncpg.Pool, workflow_id: str, version: int) -> dict[str, Any] | None:
    """A version's definition; None when the projector has not stored it (yet)."""
    async with connection(db) as conn:
        definition: dict[str, Any] | None = await conn.fetchval(reads.SELECT_WORKFLOW_DEFINITION, workflow_id, version)
    return definition


async def workflow_versions(db: asyncpg.Pool, workflow_id: str) -> list[VersionInfo]:
    """The versions of a workflow that the projector has stored, oldest first."""
    async with connection(db) as conn:
        rows = await conn.fetch(reads.SELECT_WORKFLOW_VERSIONS, workflow_id)
    return [VersionInfo(version=r["version"], created_at=iso(r["created_at"])) for r in rows]


async def execution(db: asyncpg.Pool, execution_id: str) -> tuple[ExecutionView, int] | None:
    """The execution and the seq of the last event its row reflects; None when the projector has not seen it."""
    if NUL in execution_id:
        return None  # no id holds it (Postgres text cannot)
    async with connection(db) as conn:
        row = await conn.fetchrow(reads.SELECT_EXECUTION, execution_id)
        if row is None:
            return None
        node_rows = await conn.fetch(reads.SELECT_NODE_RUNS_OF, execution_id)
    nodes = {
        n["node_id"]: NodeView(
            status=n["status"],
            attempts=n["attempts"],
            started_at=iso_opt(n["started_at"]),
            finished_at=iso_opt(n["finished_at"]),
            output=n["output"],
            error=error_view(n["error"]),
        )
        for n in node_rows
    }
    summary = _summary(row)
    view = ExecutionView(
        execution_id=summary.execution_id,
        workflow_id=summary.workflow_id,
        version=summary.version,
        status=summary.status,
        input=row["input"],
        output=row["output"],
        error=summary.error,
        parent_execution_id=summary.parent_execution_id,
        depth=summary.depth,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        nodes=nodes,
        priority=row["priority"],
        run_at=iso_opt(row["run_at"]),
        deadline=iso_opt(row["deadline"]),
        rerun_of=row["rerun_of"],
    )
    return view, int(row["last_seq"])


def _summary(row: asyncpg.Record) -> ExecutionSummary:
    return ExecutionSummary(
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        version=row["workflow_version"],
        status=row["status"],
        error=error_view(row["error"]),
        parent_execution_id=row["parent_execution_id"],
        depth=row["depth"],
        started_at=iso(row["started_at"]),
        finished_at=iso_opt(row["finished_at"]),
    )


async def executions(
    db: asyncpg.Pool, *, workflow_id: str | None, status: str | None, limit: int, cursor: str | None
) -> list[ExecutionSummary]:
    """Newest first (execution ids sort by creation time), strictly older than ``cursor``."""
    sql, args = reads.select_executions(workflow_id=workflow_id, status=status, cursor=cursor, limit=limit)
    async with connection(db) as conn:
        rows = await conn.fetch(sql, *args)
    return [_summary(r) for r in rows]


async def archived_events(db: asyncpg.Pool, execution_id: str) -> list[dict[str, Any]]:
    """The archived log of an execution (for when Redis no longer holds it), in order, each event once.

    The archive keeps runs of envelopes as the log holds them (``event_runs``, which may overlap); events archived
    before schema version 3 are in ``events``, in their API form.
    """
    if NUL in execution_id:
        return []
    async with connection(db) as conn:
        runs = await conn.fetch(reads.SELECT_EVENT_RUNS, execution_id)
        old = await conn.fetch(reads.SELECT_OLD_EVENTS, execution_id)
    by_seq: dict[int, dict[str, Any]] = {r["seq"]: r["body"] for r in old}
    for r in runs:
        for envelope in decode_envelopes(r["data"]):
            by_seq.setdefault(envelope.seq, envelope_to_dict(envelope))
    return [by_seq[seq] for seq in sorted(by_seq)]


async def archived_state(db: asyncpg.Pool, execution_id: str) -> ExecutionState | None:
    """An execution as the fold of its archived log (for a re-run once Redis no longer holds it); None when the
    archive lacks it or holds only events older than the archived runs of envelopes."""
    async with connection(db) as conn:
        runs = await conn.fetch(reads.SELECT_EVENT_RUNS, execution_id)
    by_seq = {e.seq: e for r in runs for e in decode_envelopes(r["data"])}
    if not by_seq or sorted(by_seq) != list(range(1, len(by_seq) + 1)):
        return None
    return fold(by_seq[seq] for seq in sorted(by_seq))


async def children(db: asyncpg.Pool, execution_id: str) -> dict[str, list[str]]:
    """The child executions of each sub-workflow node of ``execution_id``, oldest first."""
    async with connection(db) as conn:
        rows = await conn.fetch(reads.SELECT_CHILDREN, execution_id)
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["parent_node_id"], []).append(r["execution_id"])
    return out


def _dead_letter(r: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        id=r["id"], execution_id=r["execution_id"], workflow_id=r["workflow_id"], node_id=r["node_id"],
        error=error_view(r["error"]), attempts=r["attempt"], failed_at=iso(r["failed_at"]), input=r["input"],
    )  # fmt: skip


async def dead_letters(
    db: asyncpg.Pool, *, workflow_id: str | None, execution_id: str | None, cursor: str | None, limit: int
) -> list[DeadLetter]:
    sql, args = reads.select_dead_letters(
        workflow_id=workflow_id, execution_id=execution_id, cursor=cursor, limit=limit
    )
    async with connection(db) as conn:
        rows = await conn.fetch(sql, *args)
    return [_dead_letter(r) for r in rows]


async def dead_letter(db: asyncpg.Pool, entry_id: str) -> tuple[DeadLetter, bool] | None:
    """An entry, and whether it is still open (neither retried nor deleted); None when unknown."""
    async with connection(db) as conn:
        row = await conn.fetchrow(reads.SELECT_DEAD_LETTER, entry_id)
    return None if row is None else (_dead_letter(row), row["resolved_at"] is None)
