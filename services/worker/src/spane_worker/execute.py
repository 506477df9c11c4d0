"""One try of one node: build its context, run its executor under the node's timeout, and turn what happened into
the command that records it (``Complete`` or ``Fail``). Never raises, except on cancellation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from spane_core.commands import Complete, Fail
from spane_core.definition import NodeDef
from spane_core.effects import Task
from spane_core.events import ErrorInfo
from spane_core.ids import NodeId
from spane_core.sdk import ExecutorRegistry, NodeContext, NonRetryableError, node_result

log = logging.getLogger("spane.worker")


class NodeTimeout(Exception):
    """The node ran longer than its ``timeoutMs``; retried like any other failure."""


class UnknownNodeType(NonRetryableError):
    """No executor is registered in this worker for the node's type."""


class UnstorableOutput(NonRetryableError):
    """The executor returned a value that cannot be stored (not JSON-like data)."""


def context_for(task: Task, node: NodeDef) -> NodeContext:
    adapter = logging.LoggerAdapter(
        logging.getLogger(f"spane.executor.{node.type}"),
        {"executionId": task.execution_id, "nodeId": task.node_id, "attempt": task.attempt},
    )
    return NodeContext(
        execution_id=task.execution_id,
        workflow_id=task.workflow_id,
        node_id=task.node_id,
        node_type=node.type,
        attempt=task.attempt,
        input=task.input,
        config=node.config,
        idempotency_key=task.idempotency_key,
        depth=task.depth,
        logger=adapter,
    )


async def execute(task: Task, node: NodeDef, lease: str, executors: ExecutorRegistry) -> Complete | Fail:
    """Run ``task``'s executor and return the command that records its result under ``lease``."""
    try:
        fn = executors.get(node.type)
        if fn is None:
            known = ", ".join(executors.names()) or "none"
            raise UnknownNodeType(f"no executor for node type {node.type!r} in this worker (known: {known})")
        value = await _with_timeout(fn(context_for(task, node)), node.timeout_ms)
        result = node_result(value)
        try:
            output = msgspec.to_builtins(result.output)
        except (TypeError, ValueError) as e:
            raise UnstorableOutput(f"the output cannot be stored: {e}") from e
        next_nodes = None if result.next_nodes is None else [NodeId(n) for n in result.next_nodes]
        return Complete(node_id=task.node_id, lease=lease, output=output, next_nodes=next_nodes)
    except NonRetryableError as e:
        log.warning("node %s of %s failed for good (try %d): %s", task.node_id, task.execution_id, task.attempt, e)
        return Fail(node_id=task.node_id, lease=lease, error=_error_info(e), retryable=False)
    except Exception as e:
        log.warning("node %s of %s failed (try %d)", task.node_id, task.execution_id, task.attempt, exc_info=True)
        return Fail(node_id=task.node_id, lease=lease, error=_error_info(e), retryable=True)


async def _with_timeout(work: Any, timeout_ms: int | None) -> Any:
    if not timeout_ms:
        return await work
    deadline = asyncio.timeout(timeout_ms / 1000)
    try:
        async with deadline:
            return await work
    except TimeoutError as e:
        if deadline.expired():  # ours, not a TimeoutError the executor raised itself
            raise NodeTimeout(f"the node timed out after {timeout_ms} ms") from e
        raise


def _error_info(e: BaseException) -> ErrorInfo:
    return ErrorInfo(message=str(e) or type(e).__name__, type=type(e).__name__)
