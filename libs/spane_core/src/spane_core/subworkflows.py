"""Carrying out the effects of ``spane_core.effects_subflow``: start a sub-workflow's child, report a child's end
to its parent, make a child follow its paused, resumed or cancelled parent.

Each step is idempotent (a derived child id, decisions that ignore what they have seen already), so the task that
asks for it may be carried out any number of times: a worker that dies halfway leaves the task pending, and the
one that reclaims it does it again. The rules stay in ``decide``; this module only reads and sends commands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from redis.asyncio import Redis

from spane_core.commands import Cancel, ChildFinished, Command, Pause, Resume
from spane_core.decide_subflow import MAX_DEPTH_EXCEEDED, SUB_WORKFLOW
from spane_core.definition import WorkflowDefinition
from spane_core.effects_subflow import FOLLOW_PARENT, REPORT_TO_PARENT, START_CHILD
from spane_core.errors import FieldError, InvalidInput, NotFound, StateConflict
from spane_core.events import ErrorInfo
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.observe.context import child_context
from spane_core.state import FINISHED_EXECUTION, ExecutionState, ExecutionStatus, NodeStatus
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry
from spane_core.task import Task
from spane_core.usecases import ChildOf, resolve_workflow, start_execution

log = logging.getLogger("spane.subworkflows")


async def check_child_workflows(definition: WorkflowDefinition, workflows: WorkflowRegistry) -> None:
    """Raise ``InvalidInput`` (422) naming each sub-workflow node whose child workflow (or version) does not exist.
    A workflow may name itself: it exists once registered, and its depth is bounded at run time."""
    errors: list[FieldError] = []
    for i, node in enumerate(definition.nodes):
        if node.type != SUB_WORKFLOW:
            continue
        workflow_id, version = node.config.get("workflowId"), node.config.get("version")
        if workflow_id == definition.id:
            continue
        latest = await workflows.latest_version(str(workflow_id))
        where = f"nodes[{i}].config.workflowId"
        if latest is None:
            errors.append(FieldError(where, f"node {node.id!r} starts workflow {workflow_id!r}, which does not exist"))
        elif isinstance(version, int) and version > latest:
            message = f"node {node.id!r} starts version {version} of {workflow_id!r}, which has {latest} version(s)"
            errors.append(FieldError(f"nodes[{i}].config.version", message))
    if errors:
        raise InvalidInput("a sub-workflow node names a workflow that does not exist", errors)


class MappingFailed(Exception):
    """A JMESPath mapping could not be applied to the value at run time."""


def apply_mapping(mapping: Mapping[str, str] | None, value: Any) -> Any:
    """``{target: JMESPath source}`` applied to ``value``: an object with each target set to its source's value (a
    dotted target makes nested objects). No mapping: ``value`` unchanged."""
    if not mapping:
        return value
    out: dict[str, Any] = {}
    for target, source in mapping.items():
        try:
            result = jmespath.search(source, value)
        except jmespath_errors.JMESPathError as e:
            raise MappingFailed(f"mapping {target!r}: {source!r} failed: {e}") from e
        *parents, leaf = target.split(".")
        place = out
        for part in parents:
            nested = place.setdefault(part, {})
            if not isinstance(nested, dict):
                raise MappingFailed(f"mapping {target!r}: {part!r} is set to a value, not an object")
            place = nested
        place[leaf] = result
    return out


@dataclass
class Subworkflows:
    redis: Redis
    executions: ExecutionStore
    workflows: WorkflowRegistry
    payloads: PayloadStore
    max_depth: int

    async def carry_out(self, task: Task) -> None:
        """Do what ``task`` (of one of the ``effects_subflow`` kinds) asks; raises only what a retry may fix."""
        target = ExecutionId(task.target)
        if task.kind == START_CHILD:
            await self.start_child(task.execution_id, task.node_id, target, task.input)
        elif task.kind == REPORT_TO_PARENT:
            await self.report(task.execution_id, target, task.node_id)
        elif task.kind == FOLLOW_PARENT:
            await self.follow(await self.executions.load(task.execution_id), task.node_id, target)
        else:
            log.error("dropping a task of unknown kind %r for %s", task.kind, task.execution_id)

    async def start_child(
        self, parent_id: ExecutionId, node_id: NodeId, child_id: ExecutionId, node_input: Any
    ) -> None:
        parent = await self.executions.load(parent_id)
        if parent is None:
            return
        node = parent.node(node_id)
        if node.status is not NodeStatus.WAITING or node.child_execution_id != child_id:
            await self.follow(parent, node_id, child_id)  # the node stopped waiting (cancelled): so does the child
            return
        config = (await self.workflows.get(parent.workflow_id, parent.workflow_version)).node(node_id).config
        if parent.depth + 1 > self.max_depth:
            chain = [*(await self._ancestry(parent)), str(config.get("workflowId"))]
            message = f"sub-workflows nest deeper than SPANE_MAX_DEPTH ({self.max_depth}): {' -> '.join(chain)}"
            await self._fail(parent_id, node_id, child_id, message, MAX_DEPTH_EXCEEDED)
            return
        workflow_id = WorkflowId(str(config.get("workflowId")))
        try:
            workflow = await resolve_workflow(self.workflows, workflow_id, config.get("version"))
        except (NotFound, InvalidInput) as e:
            message = f"the sub-workflow {workflow_id!r} cannot start: {e}"
            await self._fail(parent_id, node_id, child_id, message, "SubWorkflowNotFound")
            return
        try:
            child_input = apply_mapping(config.get("inputMapping"), await self.payloads.resolve(node_input))
        except MappingFailed as e:
            await self._fail(parent_id, node_id, child_id, f"inputMapping: {e}", "MappingFailed")
            return
        traceparent = None
        if parent.traceparent is not None:
            traceparent = child_context(parent.traceparent, parent_id, node_id, node.attempt)
        child_of = ChildOf(child_id, parent_id, node_id, parent.depth + 1, parent.priority, traceparent)
        await start_execution(self.redis, self.executions, self.payloads, workflow, child_input, child_of=child_of)
        # Read the parent again after the child exists: a pause or cancel committed meanwhile found no child to
        # follow it, so the child follows it here.
        await self.follow(await self.executions.load(parent_id), node_id, child_id)

    async def report(self, child_id: ExecutionId, parent_id: ExecutionId, node_id: NodeId) -> None:
        """Tell the parent's node how its child ended; the node's output is the child's (mapped by outputMapping)."""
        child = await self.executions.load(child_id)
        if child is None or child.status not in FINISHED_EXECUTION:
            return
        parent = await self.executions.load(parent_id)
        if parent is None:
            return
        if child.status is ExecutionStatus.COMPLETED:
            config = (await self.workflows.get(parent.workflow_id, parent.workflow_version)).node(node_id).config
            output = child.output
            if config.get("outputMapping"):
                try:
                    mapped = apply_mapping(config["outputMapping"], await self.payloads.resolve(output))
                except MappingFailed as e:
                    await self._fail(parent_id, node_id, child_id, f"outputMapping: {e}", "MappingFailed")
                    return
                output = await self.payloads.store(mapped)
            await self._send(parent_id, ChildFinished(node_id, child_id, completed=True, output=output))
            return
        what = f"sub-workflow {child.workflow_id!r} (execution {child_id})"
        if child.status is ExecutionStatus.CANCELLED:
            error = ErrorInfo(message=f"{what} was cancelled", type="SubWorkflowCancelled")
        elif child.error is not None and child.error.type == MAX_DEPTH_EXCEEDED:
            error = child.error
        else:
            reason = child.error.message if child.error is not None else "failed"
            error = ErrorInfo(message=f"{what} failed: {reason}", type="SubWorkflowFailed")
        retryable = error.type != MAX_DEPTH_EXCEEDED
        await self._send(parent_id, ChildFinished(node_id, child_id, completed=False, error=error, retryable=retryable))

    async def follow(self, parent: ExecutionState | None, node_id: NodeId, child_id: ExecutionId) -> None:
        """Bring the child in line with its parent: cancelled with it (or when the node no longer waits for it),
        paused with it, resumed with it."""
        child = await self.executions.load(child_id)
        if child is None or child.status in FINISHED_EXECUTION:
            return
        node = None if parent is None else parent.node(node_id)
        command: Command | None = None
        if (
            parent is None
            or node is None
            or node.status is not NodeStatus.WAITING
            or node.child_execution_id != child_id
        ):
            command = Cancel(reason="its parent execution no longer waits for it")
        elif parent.status is ExecutionStatus.PAUSED and child.status is ExecutionStatus.RUNNING:
            command = Pause()
        elif parent.status is not ExecutionStatus.PAUSED and child.status is ExecutionStatus.PAUSED:
            command = Resume()
        if command is not None:
            await self._send(child_id, command)

    async def _ancestry(self, execution: ExecutionState) -> list[str]:
        """The workflow ids from the root execution down to ``execution``."""
        chain = [str(execution.workflow_id)]
        current = execution
        for _ in range(self.max_depth + 1):
            if current.parent_execution_id is None:
                break
            parent = await self.executions.load(current.parent_execution_id)
            if parent is None:
                chain.append("?")
                break
            chain.append(str(parent.workflow_id))
            current = parent
        return list(reversed(chain))

    async def _fail(
        self, parent_id: ExecutionId, node_id: NodeId, child_id: ExecutionId, message: str, kind: str
    ) -> None:
        error = ErrorInfo(message=message, type=kind)
        await self._send(parent_id, ChildFinished(node_id, child_id, completed=False, error=error, retryable=False))

    async def _send(self, execution_id: ExecutionId, command: Command) -> None:
        try:
            await self.executions.apply(Transition(execution_id, [command]))
        except (StateConflict, NotFound) as e:  # it moved on meanwhile: nothing left to do
            log.info("%s on %s: %s", type(command).__name__, execution_id, e)
