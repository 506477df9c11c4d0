"""How data flows along the graph: a node's input, the execution's output, a delay's deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spane_core.definition import Workflow
from spane_core.errors import NonRetryableError
from spane_core.ids import NodeId
from spane_core.state import ExecutionState, NodeStatus


def node_input(state: ExecutionState, workflow: Workflow, node_id: NodeId) -> Any:
    """An entry node gets the execution input; one parent gives its output; several give ``{parentId: output}``.

    A skipped parent, or one whose branch did not choose this node, contributes ``None``.
    """
    node = state.node(node_id)
    if node.has_input_override:
        return node.input_override
    parents = workflow.graph.parents[node_id]
    if not parents:
        return state.input
    if len(parents) == 1:
        return _output_towards(state, parents[0], node_id)
    return {p: _output_towards(state, p, node_id) for p in parents}


def _output_towards(state: ExecutionState, parent: NodeId, child: NodeId) -> Any:
    p = state.node(parent)
    if p.status is NodeStatus.SKIPPED:
        return None
    if p.next_nodes is not None and child not in p.next_nodes:
        return None
    return p.output


def execution_output(state: ExecutionState, workflow: Workflow) -> Any:
    """The one terminal node's output, or ``{terminalId: output}`` of the terminals that were not skipped."""
    terminals = workflow.graph.terminals
    if len(terminals) == 1:
        return state.node(terminals[0]).output
    return {t: state.node(t).output for t in terminals if state.node(t).status is not NodeStatus.SKIPPED}


def delay_until(config: dict[str, Any], _input: Any, now: int) -> int:
    """The epoch ms at which a ``delay`` node (``ms``, ``seconds`` or ``until``) is done."""
    for key, unit_ms in (("ms", 1), ("duration", 1), ("seconds", 1000), ("durationSeconds", 1000)):
        if key in config:
            return now + round(float(config[key]) * unit_ms)
    if "durationMinutes" in config:
        return now + round(float(config["durationMinutes"]) * 60_000)
    if "until" in config:
        text = str(config["until"]).replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as e:
            raise NonRetryableError(f"delay.until is not an ISO 8601 time: {config['until']!r}") from e
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    return now
