"""The statements that write the read models.

The projector's: a batch's new runs of events are COPYed into the archive; other rows travel as one array per
column and are ``unnest``-ed: one round trip per table, whatever the size of the batch.

JSON goes in as text cast to jsonb and comes out as text, whatever codecs the connection has.

The payload store's (``spane_core.store.payloads``) are here too: the API and the workers write that table.
"""

from __future__ import annotations

# The keys arrive sorted, so that two transactions never wait on each other's locks in opposite orders.
LOCK_EXECUTIONS = """
SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) WITH ORDINALITY AS u(k, i) ORDER BY i
"""

# The archive's columns, in the order of the projector's ``writer._run_record``: a batch's new runs are COPYed in, and
# INSERT_EVENT_RUNS (which skips the ones archived already) takes the rest.
EVENT_RUN_COLUMNS = ("execution_id", "first_seq", "last_seq", "workflow_id", "at", "data")

INSERT_EVENT_RUNS = """
INSERT INTO event_runs (execution_id, first_seq, last_seq, workflow_id, at, data)
SELECT e, f, l, w, a, d
FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::timestamptz[], $6::bytea[]) AS u(e, f, l, w, a, d)
ON CONFLICT DO NOTHING
"""

SELECT_EXECUTIONS = """
SELECT execution_id, workflow_id, workflow_version, status, output::text, error::text, parent_execution_id,
       parent_node_id, depth, idempotency_key, started_at, finished_at, updated_at, last_seq, priority, run_at,
       deadline, rerun_of
FROM executions WHERE execution_id = ANY($1::text[])
"""

# Executions with archived events after the given seq (their last folded one): events archived by a batch that
# came early, whose gap this batch may fill. ``events`` holds what was archived before schema version 3.
SELECT_HAS_LATER = """
SELECT u.e FROM unnest($1::text[], $2::int[]) AS u(e, s)
WHERE EXISTS (SELECT 1 FROM event_runs r WHERE r.execution_id = u.e AND r.last_seq > u.s)
   OR EXISTS (SELECT 1 FROM events v WHERE v.execution_id = u.e AND v.seq > u.s)
"""

# Everything archived after the given seqs: runs (msgpack arrays, which may reach back before the seq) and old
# events (jsonb). The caller orders them and takes each seq once.
SELECT_ARCHIVED_AFTER = """
SELECT r.data, NULL::text AS body FROM unnest($1::text[], $2::int[]) AS u(e, s)
JOIN event_runs r ON r.execution_id = u.e AND r.last_seq > u.s
UNION ALL
SELECT NULL::bytea, v.body::text FROM unnest($1::text[], $2::int[]) AS u(e, s)
JOIN events v ON v.execution_id = u.e AND v.seq > u.s
"""

SELECT_NODE_RUNS = """
SELECT n.execution_id, n.node_id, n.status, n.attempts, n.started_at, n.finished_at, n.output::text, n.error::text,
       n.last_seq
FROM unnest($1::text[], $2::text[]) AS u(e, n)
JOIN node_runs n ON n.execution_id = u.e AND n.node_id = u.n
"""

# Rows are folded from the stored state, so an update writes every column an event can change; the columns
# execution.started sets are written once, by the insert (but started_at, which a scheduled execution's
# execution.due moves to when it really ran). The guard makes a replay a no-op.
UPSERT_EXECUTIONS = """
INSERT INTO executions AS x (
    execution_id, workflow_id, workflow_version, status, input, output, error, parent_execution_id,
    parent_node_id, depth, idempotency_key, started_at, finished_at, updated_at, last_seq, priority, run_at, deadline,
    rerun_of)
SELECT e, w, v, st, i::jsonb, o::jsonb, er::jsonb, pe, pn, d, k, sa, fa, ua, ls, pr, ra, dl, ro
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::int[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[],
            $15::int[], $16::int[], $17::timestamptz[], $18::timestamptz[], $19::text[])
    AS u(e, w, v, st, i, o, er, pe, pn, d, k, sa, fa, ua, ls, pr, ra, dl, ro)
ON CONFLICT (execution_id) DO UPDATE SET
    status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, updated_at = EXCLUDED.updated_at, last_seq = EXCLUDED.last_seq,
    run_at = EXCLUDED.run_at, deadline = EXCLUDED.deadline
WHERE x.last_seq < EXCLUDED.last_seq
"""

UPSERT_NODE_RUNS = """
INSERT INTO node_runs AS n (
    execution_id, node_id, status, attempts, started_at, finished_at, output, error, last_seq)
SELECT e, nd, st, a, sa, fa, o::jsonb, er::jsonb, ls
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[],
            $8::text[], $9::int[])
    AS u(e, nd, st, a, sa, fa, o, er, ls)
ON CONFLICT (execution_id, node_id) DO UPDATE SET
    status = EXCLUDED.status, attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, output = EXCLUDED.output, error = EXCLUDED.error,
    last_seq = EXCLUDED.last_seq
WHERE n.last_seq < EXCLUDED.last_seq
"""

INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (id, execution_id, workflow_id, node_id, attempt, error, input, failed_at, resolved_at)
SELECT i, e, w, n, a, er::jsonb, inp::jsonb, fa, ra
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
            $8::timestamptz[], $9::timestamptz[])
    AS u(i, e, w, n, a, er, inp, fa, ra)
ON CONFLICT (id) DO NOTHING
"""

# A node queued again resolves its dead letters of earlier attempts (one requeue per node and batch: the first).
RESOLVE_DEAD_LETTERS = """
UPDATE dead_letters d SET resolved_at = u.a
FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[]) AS u(e, n, att, a)
WHERE d.execution_id = u.e AND d.node_id = u.n AND d.attempt < u.att AND d.resolved_at IS NULL
"""

INSERT_WORKFLOW_VERSIONS = """
INSERT INTO workflow_versions (workflow_id, version, definition, created_at)
SELECT w, v, d::jsonb, c FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[]) AS u(w, v, d, c)
ON CONFLICT DO NOTHING
"""

# Commutative, so that registry batches may be applied in any order and twice: name and triggers follow the
# newest version, deleted_at and updated_at the newest stream position.
UPSERT_WORKFLOWS = """
INSERT INTO workflows AS w (
    workflow_id, name, latest_version, triggers, created_at, updated_at, deleted_at, last_pos)
SELECT i, nm, v, coalesce(tr::jsonb, '[]'), c, ua, da, pos
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[],
            $7::timestamptz[], $8::bigint[])
    AS u(i, nm, v, tr, c, ua, da, pos)
ON CONFLICT (workflow_id) DO UPDATE SET
    name = CASE WHEN EXCLUDED.latest_version > coalesce(w.latest_version, 0) THEN EXCLUDED.name ELSE w.name END,
    triggers = CASE WHEN EXCLUDED.latest_version > coalesce(w.latest_version, 0)
                    THEN EXCLUDED.triggers ELSE w.triggers END,
    latest_version = greatest(w.latest_version, EXCLUDED.latest_version),
    created_at = least(w.created_at, EXCLUDED.created_at),
    updated_at = CASE WHEN EXCLUDED.last_pos > w.last_pos THEN EXCLUDED.updated_at ELSE w.updated_at END,
    deleted_at = CASE WHEN EXCLUDED.last_pos > w.last_pos THEN EXCLUDED.deleted_at ELSE w.deleted_at END,
    last_pos = greatest(w.last_pos, EXCLUDED.last_pos)
"""

# In id order: two batches that share ids then wait for each other in one order, never in a cycle.
# Storing a payload that exists already refreshes its ``stored_at`` (see migration 5), as touching it does.
INSERT_PAYLOADS = """
INSERT INTO payloads (id, body) SELECT * FROM unnest($1::text[], $2::bytea[]) AS p (id, body)
ORDER BY id ON CONFLICT (id) DO UPDATE SET stored_at = now()
"""

# The ids of those that exist; their bodies need not travel again.
TOUCH_PAYLOADS = """
WITH locked AS (SELECT id FROM payloads WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)
UPDATE payloads SET stored_at = now() FROM locked WHERE payloads.id = locked.id RETURNING payloads.id
"""

# The projector's record of which executions' logs reference which payloads.
INSERT_PAYLOAD_REFS = """
INSERT INTO payload_refs (payload_id, execution_id)
SELECT * FROM unnest($1::text[], $2::text[]) AS r (p, e) ORDER BY p, e ON CONFLICT DO NOTHING
"""

# History retention (``spane_projector.prune``): finished executions past the retention, oldest first. Execution ids
# are ULIDs, so ``execution_id < $1`` (the first id of the cutoff's next millisecond) walks the primary key over the
# executions created before the cutoff only; none finished after it is taken.
SELECT_PRUNABLE = """
SELECT execution_id FROM executions
WHERE execution_id < $1 AND finished_at < $2 AND status IN ('completed', 'failed', 'cancelled')
ORDER BY execution_id
LIMIT $3
FOR UPDATE SKIP LOCKED
"""

# Every row of those executions, in one statement: their archive, nodes, dead letters and payload references, then
# the executions. Returns the payloads they referenced.
DELETE_PRUNED = """
WITH doomed AS (SELECT unnest($1::text[]) AS execution_id),
     runs AS (DELETE FROM event_runs WHERE execution_id IN (SELECT execution_id FROM doomed)),
     old_events AS (DELETE FROM events WHERE execution_id IN (SELECT execution_id FROM doomed)),
     nodes AS (DELETE FROM node_runs WHERE execution_id IN (SELECT execution_id FROM doomed)),
     dead AS (DELETE FROM dead_letters WHERE execution_id IN (SELECT execution_id FROM doomed)),
     refs AS (DELETE FROM payload_refs WHERE execution_id IN (SELECT execution_id FROM doomed) RETURNING payload_id),
     gone AS (DELETE FROM executions WHERE execution_id IN (SELECT execution_id FROM doomed))
SELECT DISTINCT payload_id FROM refs
"""

# Of those payloads, the ones no execution references any more and no process stored since the cutoff (a process
# may take a payload it stored lately as stored, and reference it again without writing it).
DELETE_UNREFERENCED_PAYLOADS = """
DELETE FROM payloads WHERE id IN (
    SELECT id FROM payloads p
    WHERE p.id = ANY($1::text[]) AND p.stored_at < $2
      AND NOT EXISTS (SELECT 1 FROM payload_refs r WHERE r.payload_id = p.id)
    ORDER BY id FOR UPDATE
)
"""
