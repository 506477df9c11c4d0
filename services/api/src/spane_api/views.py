"""An execution as the API shows it, built from a Redis snapshot (read-your-writes) or from the read model, with
the large values that the log only references (the claim check) put back in."""

from __future__ import annotations

from typing import Any

from spane_core.codec import iso_ms
from spane_core.events import ErrorInfo
from spane_core.state import ExecutionState, NodeState
from spane_core.store.payloads import PayloadStore

from spane_api.schemas import ErrorView, ExecutionView, NodeView


def iso_or_none(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_ms(epoch_ms)


def error_view(error: ErrorInfo | dict[str, Any] | None) -> ErrorView | None:
    if error is None:
        return None
    if isinstance(error, ErrorInfo):
        return ErrorView(message=error.message, type=error.type)
    return ErrorView(message=str(error.get("message", "")), type=str(error.get("type", "Error")))


def node_view(node: NodeState) -> NodeView:
    return NodeView(
        status=node.status,
        attempts=node.attempt,
        started_at=iso_or_none(node.started_at),
        finished_at=iso_or_none(node.finished_at),
        output=node.output,
        error=error_view(node.error),
    )


def execution_from_snapshot(state: ExecutionState) -> ExecutionView:
    """Nodes that nothing has happened to yet (pending) are left out, as in the read model."""
    nodes: dict[str, NodeView] = {node_id: node_view(node) for node_id, node in state.nodes.items()}
    return ExecutionView(
        execution_id=state.execution_id,
        workflow_id=state.workflow_id,
        version=state.workflow_version,
        status=state.status,
        input=state.input,
        output=state.output,
        error=error_view(state.error),
        parent_execution_id=state.parent_execution_id,
        depth=state.depth,
        started_at=iso_ms(state.started_at),
        finished_at=iso_or_none(state.finished_at),
        nodes=nodes,
        priority=state.priority,
        run_at=iso_or_none(state.run_at),
        deadline=iso_or_none(state.deadline),
        rerun_of=state.rerun_of,
    )


async def with_payloads(payloads: PayloadStore, view: ExecutionView) -> ExecutionView:
    """``view`` with the real values in place of references: its input, output and node outputs, in one lookup."""
    nodes = list(view.nodes.values())
    values = await payloads.resolve_many([view.input, view.output, *(node.output for node in nodes)])
    view.input, view.output = values[0], values[1]
    for node, output in zip(nodes, values[2:], strict=True):
        node.output = output
    return view
