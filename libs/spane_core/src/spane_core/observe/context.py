"""W3C trace context of executions, with ids derived from the log's names so that spans need no stored state.

An execution's trace id, its root span id and the span id of each node attempt are hashes of the execution id
(and node id and attempt): the projector makes the spans from the events whenever it sees them, the worker names
the same node span in the ``traceparent`` of an ``http`` node, and a worker dying mid-node changes nothing.

What ``execution.started`` records (its ``traceparent``) says where the execution's root span hangs: its own root
span id means "nowhere" (a new trace); any other span id is the root span's parent (a sub-workflow's parent node
attempt, or the caller's span sent in the ``traceparent`` header of the request that started it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: int
    span_id: int

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-01"


def _hash(kind: str, *parts: object, size: int) -> int:
    digest = hashlib.sha256("\x1f".join([kind, *(str(p) for p in parts)]).encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # zero is an invalid id


def trace_id_of(execution_id: str) -> int:
    return _hash("trace", execution_id, size=16)


def root_span_id(execution_id: str) -> int:
    return _hash("execution", execution_id, size=8)


def node_span_id(execution_id: str, node_id: str, attempt: int) -> int:
    return _hash("node", execution_id, node_id, attempt, size=8)


def parse(traceparent: str | None) -> TraceContext | None:
    """The trace and span id of a W3C ``traceparent`` header; None when absent or malformed."""
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceContext(trace_id, span_id)


def start_context(execution_id: str, caller: str | None = None) -> str:
    """What ``execution.started`` records for a new execution: under the caller's span when its ``traceparent``
    is valid, else the root of a trace of its own."""
    parent = parse(caller)
    if parent is not None:
        return TraceContext(parent.trace_id, parent.span_id).traceparent
    return TraceContext(trace_id_of(execution_id), root_span_id(execution_id)).traceparent


def child_context(parent_traceparent: str | None, parent_execution_id: str, parent_node_id: str, attempt: int) -> str:
    """What a sub-workflow execution's start records: the span of the parent node's attempt, in the parent's trace.
    ``parent_traceparent`` is the parent execution's context (None: untraced, and the child is too)."""
    parent = parse(parent_traceparent)
    trace_id = parent.trace_id if parent is not None else trace_id_of(parent_execution_id)
    return TraceContext(trace_id, node_span_id(parent_execution_id, parent_node_id, attempt)).traceparent


def node_traceparent(execution_traceparent: str | None, execution_id: str, node_id: str, attempt: int) -> str | None:
    """The ``traceparent`` naming one node attempt's span, for what the node calls (None when untraced)."""
    context = parse(execution_traceparent)
    if context is None:
        return None
    return TraceContext(context.trace_id, node_span_id(execution_id, node_id, attempt)).traceparent


def root_parent(execution_id: str, execution_traceparent: str | None) -> int | None:
    """The span id that the execution's root span hangs under; None for the root of a trace."""
    context = parse(execution_traceparent)
    if context is None or context.span_id == root_span_id(execution_id):
        return None
    return context.span_id
