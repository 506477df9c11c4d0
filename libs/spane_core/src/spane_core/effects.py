"""What a committed list of events asks the outside world to do: node tasks to run and timers to set or drop.

The commit script writes these in the same atomic step as the events, so a task exists if and only if the event
that asked for it is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from spane_core.definition import Workflow
from spane_core.events import Event, NodeCancelled, NodeFailed, NodeQueued, NodeWaiting
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.payloads import node_input
from spane_core.state import ExecutionState, NodeStatus


class Task(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One try of one node, as a worker receives it."""

    execution_id: ExecutionId
    workflow_id: WorkflowId
    workflow_version: int
    node_id: NodeId
    node_type: str
    attempt: int
    queued_seq: int
    input: Any = None
    depth: int = 0
    traceparent: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    execution_id: ExecutionId
    node_id: NodeId
    attempt: int
    due: int  # epoch ms

    @property
    def member(self) -> str:
        return timer_member(self.execution_id, self.node_id, self.attempt)


def timer_member(execution_id: str, node_id: str, attempt: int) -> str:
    return f"{execution_id}|{node_id}|{attempt}"


def parse_timer_member(member: str) -> tuple[ExecutionId, NodeId, int]:
    execution_id, rest = member.split("|", 1)
    node_id, attempt = rest.rsplit("|", 1)
    return ExecutionId(execution_id), NodeId(node_id), int(attempt)


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
        match event:
            case NodeQueued(node_id=node_id, attempt=attempt):
                out.tasks.append(
                    Task(
                        execution_id=after.execution_id,
                        workflow_id=after.workflow_id,
                        workflow_version=after.workflow_version,
                        node_id=node_id,
                        node_type=workflow.node(node_id).type,
                        attempt=attempt,
                        queued_seq=seq,
                        input=node_input(after, workflow, node_id),
                        depth=after.depth,
                        traceparent=traceparent,
                    )
                )
            case NodeFailed(node_id=node_id, attempt=attempt, will_retry=True, retry_at=int(retry_at)):
                out.timers.append(
                    Timer(execution_id=after.execution_id, node_id=node_id, attempt=attempt, due=retry_at)
                )
            case NodeWaiting(node_id=node_id, until=int(until)):
                attempt = after.node(node_id).attempt
                out.timers.append(Timer(execution_id=after.execution_id, node_id=node_id, attempt=attempt, due=until))
            case NodeCancelled(node_id=node_id) if before is not None:
                prior = before.node(node_id)
                if prior.status in (NodeStatus.RETRYING, NodeStatus.WAITING):
                    out.dropped_timers.append(timer_member(after.execution_id, node_id, prior.attempt))
            case _:
                pass
    return out
