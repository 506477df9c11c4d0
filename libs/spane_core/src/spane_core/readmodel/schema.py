"""The Postgres read models: forward-only migrations, applied under an advisory lock.

Version ``n`` is ``MIGRATIONS[n - 1]``. A migration is never edited once released: change the schema by appending.
The API reads these tables; only the projector writes them, except ``payloads`` (see migration 2). The statements
that read and write them are beside this module: ``writes`` (the projector's and the payload store's) and ``reads``
(the API's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A connection of its own or one lent by a pool.
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

# Any constant unlikely to clash with another application's advisory locks on the same database.
MIGRATION_LOCK = 0x5350414E45  # "SPANE"

MIGRATIONS: tuple[str, ...] = (
    # 1: the read models of the workflow registry and of executions, the archived log and the dead letters.
    """
    CREATE TABLE workflows (
        workflow_id    text PRIMARY KEY,
        name           text,
        latest_version int,
        triggers       jsonb NOT NULL DEFAULT '[]',
        created_at     timestamptz,
        updated_at     timestamptz NOT NULL,
        deleted_at     timestamptz,
        last_pos       bigint NOT NULL  -- position in the registry stream of the last event applied
    );

    CREATE TABLE workflow_versions (
        workflow_id text NOT NULL,
        version     int NOT NULL,
        definition  jsonb NOT NULL,
        created_at  timestamptz NOT NULL,
        PRIMARY KEY (workflow_id, version)
    );

    CREATE TABLE executions (
        execution_id        text PRIMARY KEY,  -- a ULID: sorts by creation time
        workflow_id         text NOT NULL,
        workflow_version    int NOT NULL,
        status              text NOT NULL,
        input               jsonb,
        output              jsonb,
        error               jsonb,
        parent_execution_id text,
        parent_node_id      text,
        depth               int NOT NULL DEFAULT 0,
        idempotency_key     text,
        started_at          timestamptz NOT NULL,
        finished_at         timestamptz,
        updated_at          timestamptz NOT NULL,
        last_seq            int NOT NULL
    );
    -- Listing newest first with a cursor on execution_id; the primary key serves the unfiltered listing.
    CREATE INDEX executions_by_workflow ON executions (workflow_id, execution_id DESC);
    CREATE INDEX executions_by_status ON executions (status, execution_id DESC);
    CREATE INDEX executions_by_parent ON executions (parent_execution_id) WHERE parent_execution_id IS NOT NULL;

    CREATE TABLE node_runs (
        execution_id text NOT NULL,
        node_id      text NOT NULL,
        status       text NOT NULL,
        attempts     int NOT NULL,
        started_at   timestamptz,
        finished_at  timestamptz,
        output       jsonb,
        error        jsonb,
        last_seq     int NOT NULL,
        PRIMARY KEY (execution_id, node_id)
    );

    CREATE TABLE events (
        execution_id text NOT NULL,
        seq          int NOT NULL,
        workflow_id  text NOT NULL,
        type         text NOT NULL,
        at           timestamptz NOT NULL,
        node_id      text,
        body         jsonb NOT NULL,  -- the event as the API shows it (codec.envelope_to_dict)
        PRIMARY KEY (execution_id, seq)
    );

    CREATE TABLE dead_letters (
        id           text PRIMARY KEY,  -- execution_id:node_id:attempt
        execution_id text NOT NULL,
        workflow_id  text NOT NULL,
        node_id      text NOT NULL,
        attempt      int NOT NULL,
        error        jsonb NOT NULL,
        input        jsonb,
        failed_at    timestamptz NOT NULL,
        resolved_at  timestamptz  -- set when the node is queued again
    );
    CREATE INDEX dead_letters_open ON dead_letters (id) WHERE resolved_at IS NULL;
    CREATE INDEX dead_letters_by_node ON dead_letters (execution_id, node_id);
    """,
    # 2: the claim check's payloads (spane_core.store.payloads): large values that the log only references. Written
    # by the API and the workers, not the projector, and content-addressed: a row never changes once written.
    """
    CREATE TABLE payloads (
        id         text PRIMARY KEY,  -- "sha256:<hex>" of body
        body       bytea NOT NULL,    -- canonical JSON, stored unparsed
        created_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 3: the archive keeps runs of events, not one row per event: a row per execution and batch holds the run's
    # envelopes as the log holds them (a msgpack array), so the projector neither renders nor COPYs each event
    # and Postgres neither parses nor indexes each one. Runs of replayed or split batches may overlap; a reader
    # takes each seq once. Events archived before stay in ``events`` (jsonb ``body``) and are read as before.
    """
    CREATE TABLE event_runs (
        execution_id text NOT NULL,
        first_seq    int NOT NULL,
        last_seq     int NOT NULL,
        workflow_id  text NOT NULL,
        at           timestamptz NOT NULL,  -- of the run's last event
        data         bytea NOT NULL,        -- msgpack array of the envelopes first_seq..last_seq
        PRIMARY KEY (execution_id, first_seq)
    );
    """,
    # 4: the execution options a reader wants to see: priority, run-at (while scheduled), deadline and the
    # execution a rerun came from.
    """
    ALTER TABLE executions
        ADD COLUMN priority int NOT NULL DEFAULT 5,
        ADD COLUMN run_at   timestamptz,
        ADD COLUMN deadline timestamptz,
        ADD COLUMN rerun_of text;
    """,
    # 5: collecting payloads. ``stored_at`` is when a process last stored (or touched) a payload: one that processes
    # may still take as stored is recent. ``payload_refs`` are the executions whose log references each payload,
    # written by the projector; a payload is collected once the executions that referenced it are pruned and none
    # references it any more (payloads stored before this version have no references recorded, and stay).
    """
    ALTER TABLE payloads ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();
    CREATE TABLE payload_refs (
        payload_id   text NOT NULL,
        execution_id text NOT NULL,
        PRIMARY KEY (payload_id, execution_id)
    );
    CREATE INDEX payload_refs_by_execution ON payload_refs (execution_id);
    """,
)

_BOOKKEEPING = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    int PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
    )
"""


async def migrate(conn: Conn) -> list[int]:
    """Apply the migrations this database lacks, in one transaction; returns the versions applied.

    Safe to call from several processes at once: the first takes the lock and migrates, the others wait and then
    find nothing to do.
    """
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_BOOKKEEPING)
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied


async def schema_version(conn: Conn) -> int:
    """The newest migration applied, 0 on an empty database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(version)
