"""The event types of an execution's log and the envelope that stores them.

Events are facts, frozen and keyword-only, each with a stable explicit tag. Only add fields with defaults; an old
schema version is upcast from its raw dict before decoding (see ``codec.py``).
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from spane_core.ids import ExecutionId, NodeId, WorkflowId

SCHEMA_VERSION = 1


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    type: str = "Error"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel", omit_defaults=True):
    pass


class ExecutionStarted(_Event, tag="execution.started", frozen=True):
    execution_id: ExecutionId
    workflow_id: WorkflowId
    workflow_version: int
    input: Any = None
    parent_execution_id: ExecutionId | None = None
    parent_node_id: NodeId | None = None
    depth: int = 0
    idempotency_key: str | None = None
    # The execution's trace context (``spane_core.observe.context``): its own root span, or the span it runs under
    # (a sub-workflow's parent node, a caller's span). None while tracing is off.
    traceparent: str | None = None
    # The execution options (issue 14), each recorded so that history and replay show it.
    priority: int = 5  # 1-10, higher first: every node task of the execution carries it
    timeout_ms: int | None = None
    deadline: int | None = None  # epoch ms: the execution fails with ExecutionTimeout if unfinished by then
    run_at: int | None = None  # epoch ms: the execution is ``scheduled`` until then
    rerun_of: ExecutionId | None = None
    from_node: NodeId | None = None


class ExecutionPaused(_Event, tag="execution.paused", frozen=True):
    pass


class ExecutionResumed(_Event, tag="execution.resumed", frozen=True):
    pass


class ExecutionCancelled(_Event, tag="execution.cancelled", frozen=True):
    reason: str | None = None


class ExecutionCompleted(_Event, tag="execution.completed", frozen=True):
    output: Any = None


class ExecutionFailed(_Event, tag="execution.failed", frozen=True):
    error: ErrorInfo
    node_id: NodeId | None = None


class NodeQueued(_Event, tag="node.queued", frozen=True):
    node_id: NodeId
    attempt: int
    # A dead-lettered node retried with edited input runs on that input instead of its parents' outputs.
    input_override: Any = None
    has_input_override: bool = False
    # A dead letter retried: the node gets fresh tries, counted from this attempt on (its attempts keep counting,
    # so that every try keeps an idempotency key of its own).
    fresh_tries: bool = False


class NodeStarted(_Event, tag="node.started", frozen=True):
    node_id: NodeId
    attempt: int
    # Fences a task that was reclaimed from a dead worker: only the latest lease may record a result.
    lease: str = ""
    # When the node really started (epoch ms), if before this event was committed: a quick node's start is
    # recorded in the same commit as its result.
    started_at: int | None = None


class NodeCompleted(_Event, tag="node.completed", frozen=True):
    node_id: NodeId
    attempt: int
    output: Any = None
    next_nodes: list[NodeId] | None = None
    # A re-run copied this node's recorded output from that execution instead of running it again.
    reused_from: ExecutionId | None = None


class NodeFailed(_Event, tag="node.failed", frozen=True):
    node_id: NodeId
    attempt: int
    error: ErrorInfo
    will_retry: bool = False
    retry_at: int | None = None  # epoch ms
    continued_on_fail: bool = False


class NodeSkipped(_Event, tag="node.skipped", frozen=True):
    node_id: NodeId


class NodeWaiting(_Event, tag="node.waiting", frozen=True):
    node_id: NodeId
    reason: str  # "delay" | "sub-workflow", or a limit that defers the node (spane_core.deferral)
    until: int | None = None  # epoch ms, for delays and deferrals
    child_execution_id: ExecutionId | None = None


class NodeCancelled(_Event, tag="node.cancelled", frozen=True):
    node_id: NodeId


class NodeDeadLettered(_Event, tag="node.dead_lettered", frozen=True):
    node_id: NodeId
    attempt: int
    error: ErrorInfo
    input: Any = None


class ExecutionDue(_Event, tag="execution.due", frozen=True):
    """A scheduled execution's ``runAt`` came: it runs from now on."""


class ExecutionDeadlineSet(_Event, tag="execution.deadline_set", frozen=True):
    """The execution's deadline was set or moved (``POST /api/executions/{id}/timeout``)."""

    timeout_ms: int
    deadline: int  # epoch ms


class DeadLetterDeleted(_Event, tag="node.dead_letter_deleted", frozen=True):
    """A person dropped the dead letter of ``attempt`` of the node: it leaves the queue; the execution stays failed."""

    node_id: NodeId
    attempt: int


Event = (
    ExecutionStarted
    | ExecutionPaused
    | ExecutionResumed
    | ExecutionCancelled
    | ExecutionCompleted
    | ExecutionFailed
    | NodeQueued
    | NodeStarted
    | NodeCompleted
    | NodeFailed
    | NodeSkipped
    | NodeWaiting
    | NodeCancelled
    | NodeDeadLettered
    | ExecutionDue
    | ExecutionDeadlineSet
    | DeadLetterDeleted
)

TERMINAL_EXECUTION_EVENTS = (ExecutionCompleted, ExecutionFailed, ExecutionCancelled)

# Each event class's type name (its tag), looked up once: ``__struct_config__`` builds a new object at each access.
_TYPE_NAMES: dict[type, str] = {cls: str(cls.__struct_config__.tag) for cls in get_args(Event)}


class Envelope(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A stored event: where it sits in its execution's log, when, and the payload."""

    execution_id: ExecutionId
    workflow_id: WorkflowId
    seq: int
    at: int  # epoch ms
    event: Event
    schema_version: int = SCHEMA_VERSION
    traceparent: str | None = None

    @property
    def type(self) -> str:
        return _TYPE_NAMES[type(self.event)]
