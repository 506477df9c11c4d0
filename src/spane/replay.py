"""``spane replay <executionId>``: the execution rebuilt from its log by the pure core, as a timeline or JSON."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text
from spane_core import codec
from spane_core.errors import NotFound
from spane_core.events import Envelope
from spane_core.observe.replay import disagreements, read_model, state_at, timeline_at, timeline_rows
from spane_core.readmodel import reads
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.redis_repository import RedisRepository
from spane_projector.convert import envelope_from_body


async def read_log(settings: Settings, db: asyncpg.Connection | None, execution_id: str) -> tuple[list[Envelope], str]:
    """The execution's log and where it came from: Redis, else (it left Redis) the Postgres archive."""
    redis = open_redis(settings)
    try:
        envelopes = await RedisRepository(redis, settings.partitions).read_log(execution_id)
    finally:
        await redis.aclose()
    if envelopes or db is None:
        return envelopes, "redis"
    by_seq: dict[int, Envelope] = {}
    for row in await db.fetch(reads.SELECT_EVENT_RUNS, execution_id):
        for envelope in codec.decode_envelopes(row["data"]):
            by_seq.setdefault(envelope.seq, envelope)
    for row in await db.fetch(reads.SELECT_OLD_EVENTS, execution_id):  # archived before schema version 3
        body = row["body"]
        by_seq.setdefault(row["seq"], envelope_from_body(json.loads(body) if isinstance(body, str) else body))
    return [by_seq[s] for s in sorted(by_seq)], "postgres"


async def replay(settings: Settings, execution_id: str, at: int | None) -> dict[str, Any]:
    """Everything ``spane replay`` shows, as JSON-ready data."""
    db = await asyncpg.connect(settings.database_url) if settings.database_url else None
    try:
        log, source = await read_log(settings, db, execution_id)
        if not log:
            raise NotFound(f"execution {execution_id!r} has no log in Redis or in the archive")
        last = log[-1].seq
        if at is not None and not 1 <= at <= last:
            raise NotFound(f"execution {execution_id!r} has events 1..{last}; there is no event {at}")
        state = state_at(log, at)
        assert state is not None
        model = await read_model(db, execution_id) if db is not None else None
    finally:
        if db is not None:
            await db.close()
    out: dict[str, Any] = {
        "executionId": execution_id,
        "source": source,
        "workflowId": state.workflow_id,
        "workflowVersion": state.workflow_version,
        "status": str(state.status),
        "seq": state.seq,
        "lastSeq": last,
        "state": msgspec.to_builtins(state),
        "timeline": timeline_rows(timeline_at(log, at)),
    }
    if at is None:  # the read model shows the end of the log; a state in the middle differs from it by design
        out["disagreements"] = None if model is None else disagreements(state, *model)
    return out


def render(data: dict[str, Any], console: Console) -> None:
    """The replay for a terminal; the log's values (ids, error messages) are printed as they are, never as markup."""
    at = f" at event {data['seq']} of {data['lastSeq']}" if data["seq"] != data["lastSeq"] else ""
    console.print(
        Text.assemble(
            (data["executionId"], "bold"), f" ({data['workflowId']} v{data['workflowVersion']}): ",
            (data["status"], "bold"), at, "  ", (f"(log from {data['source']})", "dim"),
        )
    )  # fmt: skip
    table = Table("node", "attempt", "status", "start", "duration", "error")
    for r in data["timeline"]:
        duration = "" if r["durationMs"] is None else f"{r['durationMs']} ms"
        error = "" if r["error"] is None else f"{r['error']['type']}: {r['error']['message']}"
        node = r["nodeId"] if r["kind"] == "node" else "(execution)"
        attempt = str(r["attempt"]) if r["kind"] == "node" else ""
        table.add_row(*(Text(cell) for cell in (node, attempt, r["status"], r["start"], duration, error)))
    console.print(table)
    problems = data.get("disagreements")
    if problems is None and "disagreements" in data:
        console.print(Text("the read model has no row of this execution (not projected yet?)", style="yellow"))
    elif problems:
        console.print(Text("the read model disagrees with the log:", style="red"))
        for line in problems:
            console.print(Text(f"  - {line}"))
    elif problems == []:
        console.print(Text("the read model agrees with the log", style="green"))
