"""Small builders for unit tests of the pure core: definitions from compact specs, and a log-keeping driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from spane_core.commands import Command, Context, MarkStarted
from spane_core.decide import decide_and_evolve
from spane_core.definition import Workflow, WorkflowDefinition
from spane_core.events import Envelope, Event
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.state import ExecutionState, evolve


def workflow(nodes: list[dict[str, Any]], **extra: Any) -> Workflow:
    raw = {"id": "wf", "name": "wf", "nodes": nodes, **extra}
    return Workflow(msgspec.convert(raw, WorkflowDefinition), 1)


def tags(events: list[Event]) -> list[str]:
    out = []
    for e in events:
        tag = str(type(e).__struct_config__.tag)
        node = getattr(e, "node_id", None)
        out.append(f"{tag}:{node}" if node else tag)
    return out


@dataclass
class Driver:
    """Decides commands against a workflow, keeping the live state and the log as the store would."""

    wf: Workflow
    now: int = 1_000
    state: ExecutionState | None = None
    log: list[Envelope] = field(default_factory=list)
    leases: int = 0

    def send(self, command: Command, jitter: float = 0.0) -> list[Event]:
        self.leases += 1
        ctx = Context(now=self.now, lease=f"lease-{self.leases}", jitter=jitter)
        events, decided_state = decide_and_evolve(self.state, self.wf, command, ctx)
        before = self.state
        for event in events:
            self.state = evolve(self.state, event, self.now)
            assert self.state is not None
            self.log.append(
                Envelope(
                    execution_id=ExecutionId("e1"),
                    workflow_id=WorkflowId("wf"),
                    seq=self.state.seq,
                    at=self.now,
                    event=event,
                )
            )
        # What deciding hands back as the new state is the fold of its events, as the store relies on.
        assert decided_state == self.state, (before, command)
        return events

    @property
    def s(self) -> ExecutionState:
        assert self.state is not None
        return self.state

    def start_node(self, node_id: str) -> str:
        """Mark a queued node started; returns its lease."""
        node = self.s.node(NodeId(node_id))
        self.send(MarkStarted(node_id=NodeId(node_id), queued_seq=node.queued_seq))
        return self.s.node(NodeId(node_id)).lease
