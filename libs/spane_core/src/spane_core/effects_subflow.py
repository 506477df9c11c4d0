"""The effects of a commit on other executions, carried out after it by a worker (``spane_core.subworkflows``):
start the child that a sub-workflow node waits for, report a child's end to its parent, and make the children
of a paused, resumed or cancelled parent follow it.

They travel as tasks of the committing execution's partition (``Task.kind``), written by the same atomic commit
as the events that ask for them: an outbox, never a dual write. Each is idempotent, so a crash between the commit
and the effect, or a task carried out twice, changes nothing.
"""

from __future__ import annotations

from typing import Any

from spane_core.definition import Workflow
from spane_core.ids import NodeId
from spane_core.payloads import node_input
from spane_core.state import ExecutionState, NodeStatus
from spane_core.task import Task

START_CHILD = "start-child"
REPORT_TO_PARENT = "report-to-parent"
FOLLOW_PARENT = "follow-parent"
KINDS = (START_CHILD, REPORT_TO_PARENT, FOLLOW_PARENT)


def _task(
    state: ExecutionState,
    node_id: NodeId,
    attempt: int,
    seq: int,
    kind: str,
    target: str,
    tp: str | None,
    input: Any = None,
) -> Task:
    return Task(
        execution_id=state.execution_id, workflow_id=state.workflow_id, workflow_version=state.workflow_version,
        node_id=node_id, node_type="", attempt=attempt, queued_seq=seq, depth=state.depth,
        traceparent=tp, kind=kind, target=target, input=input, priority=state.priority,
    )  # fmt: skip


def child_start_task(workflow: Workflow, after: ExecutionState, node_id: NodeId, seq: int, tp: str | None) -> Task:
    """Start the child of the node's current try, on the node's input."""
    node = after.node(node_id)
    child = node.child_execution_id or ""
    return _task(after, node_id, node.attempt, seq, START_CHILD, child, tp, node_input(after, workflow, node_id))


def report_task(after: ExecutionState, seq: int, tp: str | None) -> Task:
    """Tell the parent that this child ended (the parent's node named ``parent_node_id`` waits for it)."""
    assert after.parent_execution_id is not None and after.parent_node_id is not None
    return _task(after, after.parent_node_id, 0, seq, REPORT_TO_PARENT, after.parent_execution_id, tp)


def cascade_tasks(
    before: ExecutionState, after: ExecutionState, seq: int, tp: str | None, stopped_only: bool = False
) -> list[Task]:
    """Make each child that a node waited for follow its parent (paused, resumed or cancelled); ``stopped_only``:
    only those whose node no longer waits (a parent that timed out cancels its waiting nodes)."""
    return [
        _task(after, node_id, node.attempt, seq, FOLLOW_PARENT, node.child_execution_id, tp)
        for node_id, node in before.nodes.items()
        if node.status is NodeStatus.WAITING and node.child_execution_id is not None
        and not (stopped_only and after.node(node_id).status is NodeStatus.WAITING)
    ]  # fmt: skip
