"""The rules of the execution options (priority, timeout, run-at, re-run), called from ``decide``.

Pure like ``decide``: time comes from the decision's context. An execution's own timers (its ``runAt`` and its
deadline) are durable timers like a node's retry backoff; ``effects`` arms and drops them, the scheduler fires them
as ``FireExecutionTimer``, and a timer whose time no longer matches the state (moved, or the execution finished) is
stale and decides nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spane_core.commands import FireExecutionTimer, SetTimeout, Start
from spane_core.errors import FieldError, InvalidInput, StateConflict
from spane_core.events import (
    ErrorInfo,
    ExecutionDeadlineSet,
    ExecutionDue,
    ExecutionFailed,
    NodeCancelled,
    NodeCompleted,
)
from spane_core.state import FINISHED_EXECUTION, UNFINISHED, ExecutionState, ExecutionStatus

if TYPE_CHECKING:
    from spane_core.decide import _Decision

MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 1, 5, 10
TIMEOUT_ERROR = "ExecutionTimeout"
# The timed-out execution's state: nothing new starts, and late results of running nodes are discarded.
_TIMED_OUT_ACTIVE = (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED, ExecutionStatus.SCHEDULED)


def started_fields(command: Start, now: int) -> dict[str, Any]:
    """The options a start records in ``execution.started``."""
    runs_at = command.run_at if command.run_at is not None else now
    return {
        "priority": command.priority,
        "timeout_ms": command.timeout_ms,
        "deadline": None if command.timeout_ms is None else runs_at + command.timeout_ms,
        "run_at": command.run_at,
        "rerun_of": command.rerun_of,
        "from_node": command.from_node,
    }


def reuse(d: _Decision, command: Start) -> None:
    """A re-run: record the kept nodes of the earlier execution as completed (in topological order), before the
    rest runs."""
    if not command.reused:
        return
    kept = {r.node_id: r for r in command.reused}
    for node_id in d.workflow.graph.order:
        if (r := kept.get(node_id)) is not None:
            d.emit(
                NodeCompleted(
                    node_id=node_id, attempt=0, output=r.output, next_nodes=r.next_nodes, reused_from=command.rerun_of
                )
            )


def set_timeout(d: _Decision, state: ExecutionState, command: SetTimeout) -> None:
    if state.status in FINISHED_EXECUTION:
        raise StateConflict(f"cannot set the timeout of an execution that is {state.status}")
    if command.timeout_ms <= 0:
        raise InvalidInput("invalid timeout", [FieldError("timeoutMs", "timeoutMs must be a positive integer")])
    runs_at = state.run_at if state.run_at is not None and state.run_at > d.ctx.now else d.ctx.now
    d.emit(ExecutionDeadlineSet(timeout_ms=command.timeout_ms, deadline=runs_at + command.timeout_ms))


def fire_execution_timer(d: _Decision, state: ExecutionState, command: FireExecutionTimer) -> None:
    if command.kind == "start":
        if state.status is ExecutionStatus.SCHEDULED and state.run_at == command.due:
            d.emit(ExecutionDue())
            d.look_at_everything()  # nothing ran yet: every node is a candidate
            d.advance()
    elif command.kind == "deadline" and state.status in _TIMED_OUT_ACTIVE and state.deadline == command.due:
        time_out(d, state)


def time_out(d: _Decision, state: ExecutionState) -> None:
    """Fail the execution with ``ExecutionTimeout``; its unfinished nodes are cancelled, so that nothing new
    starts, their timers are dropped and a running node's late result is discarded."""
    message = "the execution did not finish within its timeout"
    d.emit(ExecutionFailed(error=ErrorInfo(message=message, type=TIMEOUT_ERROR)))
    for node_id in d.workflow.graph.order:
        if state.node(node_id).status in UNFINISHED:
            d.emit(NodeCancelled(node_id=node_id))
