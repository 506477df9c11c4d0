"""Replaying one execution from its log for debugging (``spane replay``): fold it with the pure core, lay out its
timeline, and compare the result with the read model.

``state_at(log, seq)`` is the state after event ``seq``: the fold of the log's first ``seq`` events, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from spane_core import codec
from spane_core.events import Envelope
from spane_core.observe.spans import SpanRecord, timeline
from spane_core.readmodel import reads
from spane_core.state import ExecutionState, fold


def state_at(log: Sequence[Envelope], seq: int | None = None) -> ExecutionState | None:
    """The state after event ``seq`` (all of them when None)."""
    return fold(log if seq is None else [e for e in log if e.seq <= seq])


def timeline_at(log: Sequence[Envelope], seq: int | None = None) -> list[SpanRecord]:
    return timeline(log if seq is None else [e for e in log if e.seq <= seq])


def timeline_rows(records: Sequence[SpanRecord]) -> list[dict[str, Any]]:
    """The timeline as ``spane replay --json`` prints it."""
    return [
        {
            "kind": r.kind,
            "nodeId": r.node_id,
            "attempt": r.attempt,
            "status": r.status,
            "start": codec.iso_ms(r.start),
            "durationMs": r.duration_ms,
            "error": None if r.error is None else {"message": r.error.message, "type": r.error.type},
        }
        for r in records
    ]


async def read_model(
    db: asyncpg.Connection, execution_id: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """The execution's row and its node rows in the read model; None when it has none."""
    row = await db.fetchrow(reads.SELECT_EXECUTION, execution_id)
    if row is None:
        return None
    nodes = {r["node_id"]: dict(r) for r in await db.fetch(reads.SELECT_NODE_RUNS_OF, execution_id)}
    return dict(row), nodes


def disagreements(state: ExecutionState, row: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> list[str]:
    """Where the read model says otherwise than the fold of the log (status, seq, times, each node's attempts)."""
    out: list[str] = []

    def differ(what: str, log_value: object, model_value: object) -> None:
        if log_value != model_value:
            out.append(f"{what}: the log says {log_value!r}, the read model {model_value!r}")

    differ("status", str(state.status), row["status"])
    differ("last seq", state.seq, row["last_seq"])
    differ("finished at", state.finished_at, _ms(row["finished_at"]))
    for node_id in sorted(set(state.nodes) | set(nodes)):
        node = state.nodes.get(node_id)  # type: ignore[call-overload]
        model = nodes.get(node_id)
        if node is None or model is None:
            out.append(f"node {node_id}: {'only in the read model' if node is None else 'missing from the read model'}")
            continue
        differ(f"node {node_id} status", str(node.status), model["status"])
        differ(f"node {node_id} attempts", node.attempt, model["attempts"])
        differ(f"node {node_id} finished at", node.finished_at, _ms(model["finished_at"]))
    return out


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)
