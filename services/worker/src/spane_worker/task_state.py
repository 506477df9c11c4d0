"""What the state of an execution says about one of its tasks: may it start, did it, should it stay pending."""

from __future__ import annotations

from spane_core.effects import Task
from spane_core.events import NodeStarted
from spane_core.state import ExecutionState, ExecutionStatus, NodeStatus
from spane_core.store.executions import Outcome


def lease_if_started(outcome: Outcome, task: Task) -> str | None:
    """The lease of ``task``'s node when this very task started it in ``outcome``; else None (stale)."""
    if outcome.state is None:
        return None
    started = any(isinstance(e.event, NodeStarted) and e.event.node_id == task.node_id for e in outcome.events)
    node = outcome.state.node(task.node_id)
    if started and node.status is NodeStatus.RUNNING and node.queued_seq == task.queued_seq:
        return node.lease
    return None


def may_start(state: ExecutionState | None, task: Task) -> bool:
    if state is None or state.status is not ExecutionStatus.RUNNING:
        return False
    node = state.node(task.node_id)
    return node.status is NodeStatus.QUEUED and node.queued_seq == task.queued_seq


def keep_pending(state: ExecutionState | None, task: Task) -> bool:
    """A running node of a paused execution keeps its task pending: if its worker died, the task is reclaimed
    after resume and runs again. (A queued node gets a new task on resume, so its old one is acknowledged.) So does
    one of a failed execution, which a retried dead letter may revive."""
    if state is None or state.status not in (ExecutionStatus.PAUSED, ExecutionStatus.FAILED):
        return False
    node = state.node(task.node_id)
    return node.status is NodeStatus.RUNNING and node.queued_seq == task.queued_seq
