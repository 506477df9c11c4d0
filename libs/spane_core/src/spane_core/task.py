"""A task in a partition's tasks stream, as a worker receives it."""

from __future__ import annotations

from typing import Any

import msgspec

from spane_core.ids import ExecutionId, NodeId, WorkflowId


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
    priority: int = 5  # the execution's: the task is in the tasks stream of this priority
    # Not a node to run but work that follows the commit in another execution (``spane_core.effects_subflow``):
    # its kind, and the execution it acts on.
    kind: str = ""
    target: str = ""

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"
