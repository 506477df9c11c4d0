"""Re-running an execution: a new execution linked to the earlier one by ``rerunOf``. With ``fromNode``, the nodes
that are not downstream of it keep the outputs the earlier execution recorded (copied into the new log as completed,
marked reused), and only ``fromNode`` and what follows it run again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from spane_core.claim_check import references_in
from spane_core.commands import ReusedNode
from spane_core.definition import Workflow
from spane_core.errors import FieldError, InvalidInput, NotFound, PayloadMissing
from spane_core.execution_options import ExecutionOptions, Rerun
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionState, NodeStatus
from spane_core.store.executions import ExecutionStore
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry
from spane_core.usecases import Started, resolve_workflow, start_execution

KEEP_INPUT: Any = object()  # the earlier execution's input


async def rerun_execution(
    redis: Redis,
    workflows: WorkflowRegistry,
    executions: ExecutionStore,
    payloads: PayloadStore,
    execution_id: ExecutionId,
    *,
    execution_input: Any = KEEP_INPUT,
    version: int | None = None,
    from_node: str | None = None,
    options: ExecutionOptions | None = None,
    archived: Callable[[ExecutionId], Awaitable[ExecutionState | None]] | None = None,
) -> Started:
    """Start ``execution_id`` again: with its input and version unless given, and its priority unless ``options``
    say otherwise. The earlier execution is read from Redis, else from ``archived`` (the read model's fold of its
    log): ``NotFound`` when neither has it; ``InvalidInput`` for a ``fromNode`` the workflow version lacks."""
    earlier = await executions.load(execution_id)
    if earlier is None and archived is not None:
        earlier = await archived(execution_id)
    if earlier is None:
        raise NotFound(f"execution {execution_id!r} not found (or no longer held for a re-run)")
    workflow = await resolve_workflow(
        workflows, earlier.workflow_id, earlier.workflow_version if version is None else version
    )
    rerun = Rerun(of=earlier.execution_id)
    if from_node is not None:
        rerun = replace(rerun, from_node=NodeId(from_node), reused=reused_nodes(earlier, workflow, NodeId(from_node)))
    if options is None:
        options = ExecutionOptions(priority=earlier.priority)
    await _keep_stored(payloads, earlier, rerun, keep_input=execution_input is KEEP_INPUT)
    if execution_input is KEEP_INPUT:
        return await start_execution(
            redis, executions, payloads, workflow, earlier.input, options=options, rerun=rerun, input_stored=True
        )
    return await start_execution(redis, executions, payloads, workflow, execution_input, options=options, rerun=rerun)


async def _keep_stored(payloads: PayloadStore, earlier: ExecutionState, rerun: Rerun, *, keep_input: bool) -> None:
    """The new execution references the earlier one's stored values (its input, the outputs it reuses) without
    storing them again: touch them, so that no collection takes them before its log is projected."""
    referenced = references_in(earlier.input) if keep_input else set()
    for node in rerun.reused:
        referenced |= references_in(node.output)
    if referenced and (gone := await payloads.touch(referenced)):
        raise PayloadMissing(
            f"execution {earlier.execution_id!r} cannot be re-run with its recorded values: stored payload(s)"
            f" {', '.join(sorted(gone))} are gone"
        )


def reused_nodes(earlier: ExecutionState, workflow: Workflow, from_node: NodeId) -> tuple[ReusedNode, ...]:
    """The nodes of ``workflow`` not downstream of ``from_node`` that completed in ``earlier``, with their outputs."""
    graph = workflow.graph
    if from_node not in graph.nodes:
        known = ", ".join(graph.nodes)
        problem = FieldError("fromNode", f"the workflow has no node {from_node!r} (its nodes: {known})")
        raise InvalidInput("unknown node to re-run from", [problem])
    downstream = {from_node}
    for node_id in graph.order:  # topological: a node's parents come before it
        if any(p in downstream for p in graph.parents[node_id]):
            downstream.add(node_id)
    kept = []
    for node_id in graph.order:
        node = earlier.node(node_id)
        if node_id in downstream or node.status is not NodeStatus.COMPLETED:
            continue
        children = graph.children[node_id]
        chosen = None if node.next_nodes is None else [c for c in children if c in node.next_nodes]
        kept.append(ReusedNode(node_id=node_id, output=node.output, next_nodes=chosen))
    return tuple(kept)
