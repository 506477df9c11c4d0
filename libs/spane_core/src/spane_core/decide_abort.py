"""The rule for an execution whose transition the store refused for good: it fails, naming the cause.

Running nodes may still record their results (as after any failure, nothing new starts); a dead-letter retry is not
offered, since no node failed. A start the store refused is recorded as a start that failed at once, so that the
execution exists and says why.
"""

from __future__ import annotations

from spane_core.commands import Abort, Start
from spane_core.decide_options import started_fields
from spane_core.definition import Workflow
from spane_core.errors import StateConflict
from spane_core.events import Event, ExecutionFailed, ExecutionStarted
from spane_core.state import FINISHED_EXECUTION, ExecutionState


def started(workflow: Workflow, command: Start, now: int = 0) -> ExecutionStarted:
    """The start of ``command``, with its options (``decide_options``; ``now``: when it is decided)."""
    return ExecutionStarted(
        execution_id=command.execution_id,
        workflow_id=workflow.id,
        workflow_version=workflow.version,
        input=command.input,
        parent_execution_id=command.parent_execution_id,
        parent_node_id=command.parent_node_id,
        depth=command.depth,
        idempotency_key=command.idempotency_key,
        traceparent=command.traceparent,
        **started_fields(command, now),
    )


def abort(state: ExecutionState | None, workflow: Workflow, command: Abort) -> list[Event]:
    events: list[Event] = []
    if state is None:
        if command.start is None:
            raise StateConflict("the execution has not started")
        events.append(started(workflow, command.start))
    elif state.status in FINISHED_EXECUTION:
        return []
    events.append(ExecutionFailed(error=command.error))
    return events
