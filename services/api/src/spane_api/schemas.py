"""The JSON shapes of the API's answers (camelCase), as msgspec Structs so that the OpenAPI schema documents them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class _Shape(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class FieldProblem(_Shape):
    path: str
    message: str


class Problem(_Shape):
    """An RFC 9457 problem detail, served as ``application/problem+json``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] = msgspec.field(default_factory=list)


# Versions count up from 1; the read model stores them as Postgres integers.
Version = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class ExecuteRequest(_Shape):
    """The body of ``POST /api/workflows/{id}/execute``; ``initialData`` is the original SPANE's name for ``input``."""

    input: Any = msgspec.UNSET
    initial_data: Any = msgspec.UNSET
    version: Version | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    # Checked by the core (a wrong type or range is a 422 naming the field), so typed loosely here.
    priority: Any = None
    timeout_ms: Any = None
    run_at: Any = None
    wait_ms: Any = None


class WorkflowSaved(_Shape):
    workflow_id: str
    version: int


class WorkflowSummary(_Shape):
    workflow_id: str
    name: str
    version: int
    updated_at: str
    triggers: list[dict[str, Any]]


class WorkflowList(_Shape):
    items: list[WorkflowSummary]


class WorkflowVersionView(_Shape):
    workflow_id: str
    version: int
    definition: dict[str, Any]


class VersionInfo(_Shape):
    version: int
    created_at: str | None


class VersionList(_Shape):
    items: list[VersionInfo]


class ExecutionAccepted(_Shape):
    execution_id: str
    workflow_id: str
    version: int
    status: str


class ErrorView(_Shape):
    message: str
    type: str


class NodeView(_Shape):
    status: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    output: Any
    error: ErrorView | None


class ExecutionView(_Shape):
    execution_id: str
    workflow_id: str
    version: int
    status: str
    input: Any
    output: Any
    error: ErrorView | None
    parent_execution_id: str | None
    depth: int
    started_at: str
    finished_at: str | None
    nodes: dict[str, NodeView]
    # The child executions that each sub-workflow node started, oldest first (one per try).
    children: dict[str, list[str]] = msgspec.field(default_factory=dict)
    priority: int = 5  # 1-10, higher first
    run_at: str | None = None  # while scheduled: when it will start
    deadline: str | None = None  # when it times out (its timeoutMs, or POST .../timeout)
    rerun_of: str | None = None  # the execution this one reruns


class ExecutionSummary(_Shape):
    execution_id: str
    workflow_id: str
    version: int
    status: str
    error: ErrorView | None
    parent_execution_id: str | None
    depth: int
    started_at: str
    finished_at: str | None


class ExecutionPage(_Shape):
    items: list[ExecutionSummary]
    next_cursor: str | None


class History(_Shape):
    events: list[dict[str, Any]]


class CommandAccepted(_Shape):
    execution_id: str
    status: str


class Health(_Shape):
    status: str


class Readiness(_Shape):
    status: str
    checks: dict[str, str]


class WebhookAccepted(_Shape):
    execution_ids: list[str]


class ScheduleView(_Shape):
    workflow_id: str
    cron: str
    timezone: str
    next_run_at: str | None
    last_run_at: str | None
    last_execution_id: str | None


class ScheduleList(_Shape):
    items: list[ScheduleView]


class TimeoutRequest(_Shape):
    timeout_ms: Any = None


class RerunRequest(_Shape):
    """``input`` and ``version`` default to the earlier execution's; ``fromNode`` keeps what is not downstream."""

    input: Any = msgspec.UNSET
    version: Any = None
    from_node: Any = None
    priority: Any = None
    timeout_ms: Any = None
    run_at: Any = None


class RerunAccepted(_Shape):
    execution_id: str
    workflow_id: str
    version: int
    status: str
    rerun_of: str


class ExecuteManyRequest(_Shape):
    inputs: Any = None
    idempotency_key_prefix: Any = None
    version: Any = None
    priority: Any = None
    timeout_ms: Any = None
    run_at: Any = None


class ExecutionsStarted(_Shape):
    execution_ids: list[str]


class BulkCommandRequest(_Shape):
    """Either ``executionIds``, or a ``workflowId`` and a ``status`` that select executions from the read model."""

    execution_ids: Any = None
    workflow_id: Any = None
    status: Any = None


class SkippedExecution(_Shape):
    execution_id: str
    reason: str


class BulkAccepted(_Shape):
    accepted: int
    skipped: list[SkippedExecution]


class BreakerItem(_Shape):
    name: str  # the node type, or ``http:<host>`` for http nodes
    state: str  # closed, open, half_open
    failures: int  # consecutive failures counted while closed
    successes: int  # successful probes while half-open
    open_until: str | None  # when an open breaker lets one probe through
    failure_threshold: int
    success_threshold: int
    timeout_ms: int


class Breakers(_Shape):
    items: list[BreakerItem]


class BreakerReset(_Shape):
    name: str
    state: str


class BucketItem(_Shape):
    name: str  # ``type:<node type>`` or ``node:<workflow id>/<node id>``
    max: int
    per_ms: int
    available: int  # tokens a node could take now
    reserved: int  # deferred nodes holding a later turn


class Buckets(_Shape):
    items: list[BucketItem]


class DeadLetter(_Shape):
    id: str
    execution_id: str
    workflow_id: str
    node_id: str
    error: ErrorView | None
    attempts: int
    failed_at: str
    input: Any


class DeadLetterPage(_Shape):
    items: list[DeadLetter]
    next_cursor: str | None


class RetryRequest(_Shape):
    """The body of ``POST /api/dlq/{id}/retry``: ``input`` replaces the node's input for its new tries."""

    input: Any = msgspec.UNSET


class DeadLetterRetried(_Shape):
    id: str
    execution_id: str
    node_id: str
    attempt: int  # the new try's
    status: str  # the execution's, revived
