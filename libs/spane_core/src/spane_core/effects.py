"""What a committed list of events asks the outside world to do: node tasks to run and timers to set or drop.

The commit script writes these in the same atomic step as the events, so a task exists if and only if the event
that asked for it is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from spane_core.commands import FireExecutionTimer, FireTimer
from spane_core.decide_signal import WAIT
from spane_core.decide_subflow import SUB_WORKFLOW, WAITING_REASON
from spane_core.definition import Workflow
from spane_core.effects_subflow import cascade_tasks, child_start_task, report_task
from spane_core.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionDeadlineSet,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionStarted,
    NodeCancelled,
    NodeCompleted,
    NodeFailed,
    NodeQueued,
    NodeSkipped,
    NodeStarted,
    NodeWaiting,
)
from spane_core.ids import ExecutionId, NodeId
from spane_core.payloads import node_input
from spane_core.state import ExecutionState, NodeStatus
from spane_core.task import Task
from spane_core.timer_options import execution_timer_member, execution_timers

# Node types whose node.queued is no task for a worker: the engine carries them out.
ENGINE_QUEUED = frozenset({SUB_WORKFLOW, WAIT})

__all__ = ["Effects", "Task", "Timer", "effects", "parse_timer_member", "timer_member"]


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    execution_id: ExecutionId
    node_id: NodeId
    attempt: int
    due: int  # epoch ms
    kind: str = ""  # "": a node's timer; "start" or "deadline": the execution's own (see ``timer_options``)

    @property
    def member(self) -> str:
        if self.kind:
            return execution_timer_member(self.kind, self.execution_id, self.due)
        return timer_member(self.execution_id, self.node_id, self.attempt)


def timer_member(execution_id: str, node_id: str, attempt: int) -> str:
    return f"{execution_id}|{node_id}|{attempt}"


def parse_timer_member(member: str) -> tuple[ExecutionId, NodeId, int]:
    execution_id, rest = member.split("|", 1)
    node_id, attempt = rest.rsplit("|", 1)
    return ExecutionId(execution_id), NodeId(node_id), int(attempt)


def timer_command(member: str) -> tuple[ExecutionId, FireTimer | FireExecutionTimer]:
    """The command that a due timer member sends to its execution; ``ValueError`` when it is unreadable."""
    if member.startswith("!"):
        kind, execution_id, due = member[1:].split("|")
        return ExecutionId(execution_id), FireExecutionTimer(kind=kind, due=int(due))
    execution_id, node_id, attempt = parse_timer_member(member)
    return execution_id, FireTimer(node_id=node_id, attempt=attempt)


# Events that never cause an effect (among others, told apart in ``effects``).
_NO_EFFECTS = frozenset({NodeStarted, NodeCompleted, NodeSkipped})


@dataclass
class Effects:
    tasks: list[Task] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    dropped_timers: list[str] = field(default_factory=list)


def effects(
    workflow: Workflow,
    before: ExecutionState | None,
    after: ExecutionState,
    events: list[Event],
    traceparent: str | None = None,
) -> Effects:
    out = Effects()
    seq = before.seq if before is not None else 0
    for event in events:
        seq += 1
        if type(event) in _NO_EFFECTS:  # most of a log: skip the cases below
            continue
        match event:
            case NodeQueued(node_id=node_id, attempt=attempt):
                node_type = workflow.node(node_id).type
                if node_type in ENGINE_QUEUED:  # a child, or a signal, instead (node.waiting, below)
                    continue
                out.tasks.append(
                    Task(
                        execution_id=after.execution_id,
                        workflow_id=after.workflow_id,
                        workflow_version=after.workflow_version,
                        node_id=node_id,
                        node_type=node_type,
                        attempt=attempt,
                        queued_seq=seq,
                        input=node_input(after, workflow, node_id),
                        depth=after.depth,
                        traceparent=traceparent,
                        priority=after.priority,
                    )
                )
            case NodeFailed(node_id=node_id, attempt=attempt, will_retry=True, retry_at=int(retry_at)):
                out.timers.append(
                    Timer(execution_id=after.execution_id, node_id=node_id, attempt=attempt, due=retry_at)
                )
            case NodeWaiting(node_id=node_id, until=int(until)):
                attempt = after.node(node_id).attempt
                out.timers.append(Timer(execution_id=after.execution_id, node_id=node_id, attempt=attempt, due=until))
            case NodeWaiting(node_id=node_id, reason=reason) if reason == WAITING_REASON:
                out.tasks.append(child_start_task(workflow, after, node_id, seq, traceparent))
            case NodeCancelled(node_id=node_id) if before is not None:
                prior = before.node(node_id)
                if prior.status in (NodeStatus.RETRYING, NodeStatus.WAITING):
                    out.dropped_timers.append(timer_member(after.execution_id, node_id, prior.attempt))
            case (
                ExecutionStarted() | ExecutionDeadlineSet() | ExecutionCompleted() | ExecutionFailed()
                | ExecutionCancelled()
            ):  # fmt: skip
                for kind, due in execution_timers(before, after, event, out.dropped_timers):
                    out.timers.append(
                        Timer(execution_id=after.execution_id, node_id=NodeId(""), attempt=0, due=due, kind=kind)
                    )
                out.tasks += _subflow_tasks(event, before, after, seq, traceparent)
            case ExecutionPaused() | ExecutionResumed():
                out.tasks += _subflow_tasks(event, before, after, seq, traceparent)
            case _:
                pass
    return out


def _subflow_tasks(
    event: Event, before: ExecutionState | None, after: ExecutionState, seq: int, traceparent: str | None
) -> list[Task]:
    """A parent's pause, resume, cancel or timeout reaches its children; a child's end reaches its parent."""
    tasks = []
    if before is not None and isinstance(event, ExecutionPaused | ExecutionResumed | ExecutionCancelled):
        tasks += cascade_tasks(before, after, seq, traceparent)
    elif before is not None and isinstance(event, ExecutionFailed):  # timed out: its waiting nodes were cancelled
        tasks += cascade_tasks(before, after, seq, traceparent, stopped_only=True)
    ends = isinstance(event, ExecutionCancelled | ExecutionCompleted | ExecutionFailed)
    if ends and after.parent_execution_id is not None:
        tasks.append(report_task(after, seq, traceparent))
    return tasks
