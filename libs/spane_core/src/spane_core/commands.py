"""What can be asked of an execution. ``decide`` turns a command into events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId


@dataclass(frozen=True, slots=True)
class Context:
    """Everything impure that a decision needs, passed in so that ``decide`` stays a pure function."""

    now: int  # epoch ms
    lease: str = ""  # a fresh token, used when a node starts
    jitter: float = 0.5  # a random fraction in [0, 1) for retry backoff jitter


@dataclass(frozen=True, slots=True)
class Start:
    execution_id: ExecutionId
    input: Any = None
    parent_execution_id: ExecutionId | None = None
    parent_node_id: NodeId | None = None
    depth: int = 0
    idempotency_key: str | None = None
    # W3C trace context of the execution (``spane_core.observe.context``); None while tracing is off.
    traceparent: str | None = None
    priority: int = 5
    timeout_ms: int | None = None  # the deadline is this long after the execution runs (now, or at ``run_at``)
    run_at: int | None = None  # epoch ms; None: now
    rerun_of: ExecutionId | None = None
    from_node: NodeId | None = None
    reused: tuple[ReusedNode, ...] = ()  # the re-run's nodes recorded as completed from ``rerun_of``


@dataclass(frozen=True, slots=True)
class ReusedNode:
    """A node of an earlier execution whose recorded output a re-run keeps."""

    node_id: NodeId
    output: Any = None
    next_nodes: list[NodeId] | None = None


@dataclass(frozen=True, slots=True)
class MarkStarted:
    """A worker took the task that ``node.queued`` (at ``queued_seq``) asked for.

    ``first_only``: start the node only if no one has yet (a worker that ran a quick node before recording its
    start must not take over a node that a reclaim restarted meanwhile). ``lease``: the worker's own token, when
    it already runs the node under it; else a fresh one from the context. ``started_at``: when it really started.
    """

    node_id: NodeId
    queued_seq: int
    lease: str | None = None
    first_only: bool = False
    started_at: int | None = None


@dataclass(frozen=True, slots=True)
class Complete:
    node_id: NodeId
    lease: str
    output: Any = None
    next_nodes: list[NodeId] | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    node_id: NodeId
    lease: str
    error: ErrorInfo
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class FireTimer:
    """A retry backoff or a delay that was set for ``attempt`` of the node is due."""

    node_id: NodeId
    attempt: int


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """The task of ``node.queued`` (at ``queued_seq``) was delivered ``deliveries`` times and every worker that took
    it went silent (killed, crashed, out of memory): that counts as one failed try, so that a task that kills its
    workers ends in the retry policy and the dead-letter queue rather than in an endless reclaim loop."""

    node_id: NodeId
    queued_seq: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class Pause:
    pass


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChildFinished:
    """A sub-workflow execution started by ``node_id`` reached a final state."""

    node_id: NodeId
    child_execution_id: ExecutionId
    completed: bool
    output: Any = None
    error: ErrorInfo | None = None
    retryable: bool = True  # False: the node fails at once (the child could not start, or nested too deep)


@dataclass(frozen=True, slots=True)
class RetryDeadLetter:
    """Run a dead-lettered node again with fresh attempts (optionally on ``input``) and revive its execution.
    ``attempt``: the try whose dead letter is retried; another one (retried already) is a conflict."""

    node_id: NodeId
    input: Any = None
    has_input: bool = False
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteDeadLetter:
    """Drop the dead letter of ``attempt`` of the node; the execution stays failed."""

    node_id: NodeId
    attempt: int


@dataclass(frozen=True, slots=True)
class Abort:
    """The store refused, for good, to record a transition of the execution (a script error, a value it does not
    take): the execution fails with ``error`` instead of its transition being tried forever. ``start``: the
    execution's start, when the refused transition was the one that started it."""

    error: ErrorInfo
    start: Start | None = None


@dataclass(frozen=True, slots=True)
class SetTimeout:
    """Set or move the execution's deadline to ``timeout_ms`` from now."""

    timeout_ms: int


@dataclass(frozen=True, slots=True)
class FireExecutionTimer:
    """An execution's own timer is due: ``kind`` "start" (its runAt) or "deadline", set for ``due`` (epoch ms)."""

    kind: str
    due: int


@dataclass(frozen=True, slots=True)
class Defer:
    """A shared limit (``spane_core.deferral``: a circuit breaker, a rate limit, a concurrency limit) holds back the
    task of ``node.queued`` at ``queued_seq``: the node waits until ``until`` (epoch ms), spending no attempt."""

    node_id: NodeId
    queued_seq: int
    reason: str
    until: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal named ``name`` came for the execution, with ``data``: the ``wait`` nodes waiting for it complete
    with ``data`` as their output (``spane_core.decide_signal``)."""

    name: str
    data: Any = None


Command = (
    Start
    | MarkStarted
    | Complete
    | Fail
    | FireTimer
    | WorkerLost
    | Pause
    | Resume
    | Cancel
    | ChildFinished
    | RetryDeadLetter
    | Abort
    | SetTimeout
    | FireExecutionTimer
    | Defer
    | DeleteDeadLetter
    | Signal
)
