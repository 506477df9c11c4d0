"""The statements that read the read models: the API's queries, and the payload store's fetch.

They name the tables and columns of ``schema``; turning rows into views is the reader's business. JSON columns come
back as the connection's codecs decode them.
"""

from __future__ import annotations

# Deleted workflows are left out, and so is one whose registration the projector has only half seen.
SELECT_WORKFLOWS = """
SELECT workflow_id, name, latest_version, updated_at, triggers FROM workflows
WHERE deleted_at IS NULL AND latest_version IS NOT NULL ORDER BY workflow_id
"""

SELECT_WORKFLOW_DEFINITION = "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2"

SELECT_WORKFLOW_VERSIONS = "SELECT version, created_at FROM workflow_versions WHERE workflow_id = $1 ORDER BY version"

# What a listing shows of an execution; reading one adds its input and output.
EXECUTION_SUMMARY_COLUMNS = (
    "execution_id, workflow_id, workflow_version, status, error, parent_execution_id, depth, started_at,"
    " finished_at, last_seq"
)

SELECT_EXECUTION = f"""
SELECT {EXECUTION_SUMMARY_COLUMNS}, input, output, priority, run_at, deadline, rerun_of
FROM executions WHERE execution_id = $1
"""

SELECT_NODE_RUNS_OF = """
SELECT node_id, status, attempts, started_at, finished_at, output, error FROM node_runs WHERE execution_id = $1
"""

# Filters a listing may take, each an equality on its column (the indexes of migration 1 serve them).
_LISTING_FILTERS = ("workflow_id", "status")


def select_executions(
    *, workflow_id: str | None, status: str | None, cursor: str | None, limit: int
) -> tuple[str, list[object]]:
    """The listing query and its arguments: newest first (execution ids sort by creation time), strictly older
    than ``cursor``, at most ``limit`` rows."""
    clauses: list[str] = []
    args: list[object] = []
    for column, value in zip(_LISTING_FILTERS, (workflow_id, status), strict=True):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if cursor is not None:
        args.append(cursor)
        clauses.append(f"execution_id < ${len(args)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit)
    sql = f"SELECT {EXECUTION_SUMMARY_COLUMNS} FROM executions {where} ORDER BY execution_id DESC LIMIT ${len(args)}"
    return sql, args


# The archive of an execution: runs of envelopes (which may overlap), and events archived before schema version 3.
SELECT_EVENT_RUNS = "SELECT data FROM event_runs WHERE execution_id = $1"

SELECT_OLD_EVENTS = "SELECT seq, body FROM events WHERE execution_id = $1"

SELECT_PAYLOADS = "SELECT id, body FROM payloads WHERE id = ANY($1::text[])"

# The children that sub-workflow nodes of an execution started, oldest first.
SELECT_CHILDREN = """
SELECT execution_id, parent_node_id FROM executions WHERE parent_execution_id = $1 ORDER BY execution_id
"""

# The dead-letter queue: the entries neither retried nor deleted (``resolved_at`` unset).
DEAD_LETTER_COLUMNS = "id, execution_id, workflow_id, node_id, attempt, error, input, failed_at, resolved_at"

SELECT_DEAD_LETTER = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1"


def select_dead_letters(
    *, workflow_id: str | None, execution_id: str | None, cursor: str | None, limit: int
) -> tuple[str, list[object]]:
    """The open entries, newest execution first (ids begin with the execution id), strictly after ``cursor``."""
    clauses = ["resolved_at IS NULL"]
    args: list[object] = []
    for column, value in (("workflow_id", workflow_id), ("execution_id", execution_id)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if cursor is not None:
        args.append(cursor)
        clauses.append(f"id < ${len(args)}")
    args.append(limit)
    where = " AND ".join(clauses)
    sql = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE {where} ORDER BY id DESC LIMIT ${len(args)}"
    return sql, args
