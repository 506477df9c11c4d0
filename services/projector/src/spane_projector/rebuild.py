"""``spane projector rebuild``: every read model rebuilt from the archive and the log into fresh tables, then
swapped in for the live ones in one transaction.

The fresh tables are made by the same migrations in a schema of their own (``spane_rebuild``) and filled by the
projector's own writers (workflows from the registry stream; each execution's whole log, from the Postgres archive
and its Redis log, folded from the start). The swap moves the live tables to ``spane_retired`` (kept for a look
until the next rebuild) and the rebuilt ones into ``public``. Run it with the projectors stopped: what they fold
while it runs would be in the retired tables only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from spane_core import codec, keys
from spane_core.events import Envelope
from spane_core.readmodel import migrate
from spane_core.store.connection import as_text
from spane_core.store.redis_repository import RedisRepository

from spane_projector.convert import envelope_from_body
from spane_projector.rows import stream_pos
from spane_projector.writer import write_commits, write_workflow_events

log = logging.getLogger("spane.projector")

READ_MODELS = ("workflows", "workflow_versions", "executions", "node_runs", "dead_letters")
FRESH = "spane_rebuild"
RETIRED = "spane_retired"
CHUNK = 500  # executions folded per transaction


async def rebuild(redis: aioredis.Redis, conn: asyncpg.Connection, partitions: int) -> dict[str, int]:
    """Rebuild every read model and swap it in; returns the rows of each rebuilt table."""
    await migrate(conn)  # the live schema, the archive's source, is there and current
    await conn.execute(f"DROP SCHEMA IF EXISTS {FRESH} CASCADE")
    await conn.execute(f"CREATE SCHEMA {FRESH}")
    await conn.execute(f"SET search_path TO {FRESH}")
    try:
        await migrate(conn)
        await _workflows(redis, conn)
        ids = await _execution_ids(redis, conn, partitions)
        for i in range(0, len(ids), CHUNK):
            logs = [await _log(redis, conn, eid, partitions) for eid in ids[i : i + CHUNK]]
            await write_commits(conn, (e for one in logs for e in one))
        counts = {t: int(await conn.fetchval(f"SELECT count(*) FROM {FRESH}.{t}")) for t in READ_MODELS}
    finally:
        await conn.execute("SET search_path TO public")
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {RETIRED} CASCADE")
        await conn.execute(f"CREATE SCHEMA {RETIRED}")
        await conn.execute(f"LOCK TABLE {', '.join(f'public.{t}' for t in READ_MODELS)} IN ACCESS EXCLUSIVE MODE")
        for table in READ_MODELS:
            await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {RETIRED}")
            await conn.execute(f"ALTER TABLE {FRESH}.{table} SET SCHEMA public")
    await conn.execute(f"DROP SCHEMA {FRESH} CASCADE")  # what is left: its copy of the archive and bookkeeping
    log.info("read models rebuilt and swapped in: %s", counts)
    return counts


async def _workflows(redis: aioredis.Redis, conn: asyncpg.Connection) -> None:
    start = "-"
    while True:
        entries: list[Any] = await redis.xrange(keys.WorkflowKeys.events, min=start, max="+", count=CHUNK) or []
        batch = [(stream_pos(as_text(i)), codec.decode_workflow_event(f[b"b"])) for i, f in entries if f and b"b" in f]
        if batch:
            await write_workflow_events(conn, batch)
        if len(entries) < CHUNK:
            return
        start = f"({as_text(entries[-1][0])}"


async def _execution_ids(redis: aioredis.Redis, conn: asyncpg.Connection, partitions: int) -> list[str]:
    ids = {
        r[0]
        for r in await conn.fetch(
            "SELECT execution_id FROM public.event_runs UNION SELECT execution_id FROM public.events"
        )
    }
    for p in keys.all_partitions(partitions):
        prefix = p.log("")
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            ids.add(as_text(key)[len(prefix) :])
    return sorted(ids)


async def _log(redis: aioredis.Redis, conn: asyncpg.Connection, execution_id: str, partitions: int) -> list[Envelope]:
    """The execution's whole log: the archive, then what only Redis holds yet."""
    by_seq: dict[int, Envelope] = {}
    for row in await conn.fetch("SELECT data FROM public.event_runs WHERE execution_id = $1", execution_id):
        for envelope in codec.decode_envelopes(row["data"]):
            by_seq.setdefault(envelope.seq, envelope)
    for row in await conn.fetch("SELECT seq, body FROM public.events WHERE execution_id = $1", execution_id):
        by_seq.setdefault(row["seq"], envelope_from_body(_json(row["body"])))
    for envelope in await RedisRepository(redis, partitions).read_log(execution_id):
        by_seq.setdefault(envelope.seq, envelope)
    return _contiguous_from_start(by_seq[s] for s in sorted(by_seq))


def _contiguous_from_start(envelopes: Iterable[Envelope]) -> list[Envelope]:
    out: list[Envelope] = []
    for envelope in envelopes:
        if envelope.seq != len(out) + 1:
            break
        out.append(envelope)
    return out


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
