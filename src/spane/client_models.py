"""The answers of the SPANE API as typed values (camelCase on the wire, snake_case here)."""

from __future__ import annotations

from typing import Any

import msgspec

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
FINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})


class _Answer(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class Applied(_Answer):
    workflow_id: str
    version: int
    created: bool  # False: identical to the latest version, which was kept


class WorkflowSummary(_Answer):
    workflow_id: str
    name: str
    version: int
    updated_at: str
    triggers: list[dict[str, Any]] = msgspec.field(default_factory=list)


class WorkflowVersion(_Answer):
    workflow_id: str
    version: int
    definition: dict[str, Any]


class VersionInfo(_Answer):
    version: int
    created_at: str | None = None


class Started(_Answer):
    execution_id: str
    workflow_id: str
    version: int
    status: str


class Rerun(Started):
    rerun_of: str


class ErrorInfo(_Answer):
    message: str
    type: str = "Error"


class NodeRun(_Answer):
    status: str
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: ErrorInfo | None = None


class ExecutionSummary(_Answer):
    execution_id: str
    workflow_id: str
    version: int
    status: str
    error: ErrorInfo | None = None
    parent_execution_id: str | None = None
    depth: int = 0
    started_at: str | None = None
    finished_at: str | None = None


class Execution(ExecutionSummary):
    input: Any = None
    output: Any = None
    nodes: dict[str, NodeRun] = msgspec.field(default_factory=dict)
    children: dict[str, list[str]] = msgspec.field(default_factory=dict)  # sub-workflow node id: child ids
    priority: int = 5
    run_at: str | None = None
    deadline: str | None = None
    rerun_of: str | None = None


class ExecutionPage(_Answer):
    items: list[ExecutionSummary]
    next_cursor: str | None = None


class CommandAccepted(_Answer):
    execution_id: str
    status: str


class DeadLetter(_Answer):
    id: str
    execution_id: str
    workflow_id: str
    node_id: str
    error: Any = None
    attempts: int = 0
    failed_at: str | None = None
    input: Any = None


class DeadLetterPage(_Answer):
    items: list[DeadLetter]
    next_cursor: str | None = None


class ServerEvent(msgspec.Struct, kw_only=True):
    """One event of an execution's stream: ``type`` is the event type (``execution.state`` for the snapshot)."""

    type: str
    data: dict[str, Any]
    id: str | None = None


class Breaker(_Answer):
    name: str  # the node type, or ``http:<host>``
    state: str  # closed, open, half_open
    failures: int
    successes: int
    open_until: str | None
    failure_threshold: int
    success_threshold: int
    timeout_ms: int


class Bucket(_Answer):
    name: str  # ``type:<node type>`` or ``node:<workflow id>/<node id>``
    max: int
    per_ms: int
    available: int
    reserved: int


class Schedule(_Answer):
    workflow_id: str
    cron: str
    timezone: str
    next_run_at: str | None
    last_run_at: str | None
    last_execution_id: str | None
