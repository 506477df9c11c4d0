"""One try of one node: resolve its input's stored payloads, build its context, run its executor under the node's
timeout, and turn what happened into the command that records it (``Complete`` or ``Fail``), with a large output
stored aside (the claim check, ``spane_core.claim_check``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
from spane_core.claim_check import Offloaded, references_in
from spane_core.commands import Complete, Fail
from spane_core.definition import NodeDef
from spane_core.effects import Task
from spane_core.errors import NodeTimeout, PayloadsUnavailable, SpaneError, UnknownNodeType, UnstorableOutput
from spane_core.events import ErrorInfo
from spane_core.ids import NodeId
from spane_core.observe.context import node_traceparent
from spane_core.sdk import ExecutorRegistry, NodeContext, NonRetryableError, node_result
from spane_core.store.payloads import PayloadStore

from spane_worker.cpu import CpuPool

log = logging.getLogger("spane.worker")


@dataclass(frozen=True, slots=True)
class Ran:
    """What a try asks to record, and the payloads (by id) that must be stored before it may be recorded."""

    command: Complete | Fail
    payloads: dict[str, bytes] = field(default_factory=dict)


def context_for(task: Task, node: NodeDef, input: Any) -> NodeContext:
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
        input=input,
        config=node.config,
        idempotency_key=task.idempotency_key,
        depth=task.depth,
        logger=adapter,
        traceparent=node_traceparent(task.traceparent, task.execution_id, task.node_id, task.attempt),
    )


async def execute(
    task: Task,
    node: NodeDef,
    lease: str,
    executors: ExecutorRegistry,
    payloads: PayloadStore | None = None,
    cpu: CpuPool | None = None,
) -> Ran:
    """Run ``task``'s executor and return what records its result under ``lease``.

    Raises ``PayloadsUnavailable`` (and nothing else but cancellation) when the input's stored payloads cannot be
    read: nothing ran, and the task is left pending for a reclaim to run it again. Without ``payloads`` (a worker
    with no database) outputs stay inline whatever their size. A CPU-bound node type runs in ``cpu``, the pool.
    """
    try:
        input = await _resolved_input(task, payloads)
    except PayloadsUnavailable:
        raise
    except Exception as e:  # a stored value is lost or unreadable: retrying cannot bring it back
        log.error("node %s of %s cannot run: %s", task.node_id, task.execution_id, e)
        return Ran(Fail(node_id=task.node_id, lease=lease, error=_error_info(e), retryable=False))
    try:
        fn = executors.get(node.type)
        if fn is None:
            known = ", ".join(executors.names()) or "none"
            raise UnknownNodeType(f"no executor for node type {node.type!r} in this worker (known: {known})")
        ctx = context_for(task, node, input)
        if cpu is not None and executors.is_cpu_bound(node.type):
            value = await _with_timeout(cpu.run(fn, ctx), node.timeout_ms)
        else:
            value = await _with_timeout(fn(ctx), node.timeout_ms)
        result = node_result(value)
        try:
            output = msgspec.to_builtins(result.output)
            out = Offloaded(output) if payloads is None else payloads.offload(output)
        except (TypeError, ValueError) as e:
            raise UnstorableOutput(f"the output cannot be stored: {e}") from e
        next_nodes = None if result.next_nodes is None else [NodeId(n) for n in result.next_nodes]
        return Ran(Complete(node_id=task.node_id, lease=lease, output=out.value, next_nodes=next_nodes), out.payloads)
    except NonRetryableError as e:
        log.warning("node %s of %s failed for good (try %d): %s", task.node_id, task.execution_id, task.attempt, e)
        return Ran(Fail(node_id=task.node_id, lease=lease, error=_error_info(e), retryable=False))
    except Exception as e:
        # A failure SPANE names itself (a timeout, a 5xx) or a network error says it all in one line; anything else
        # is likely a bug in an executor's code, and comes with its traceback.
        expected = isinstance(e, SpaneError | httpx.HTTPError)
        log.warning(
            "node %s of %s failed (try %d): %s: %s",
            task.node_id,
            task.execution_id,
            task.attempt,
            type(e).__name__,
            e,
            exc_info=not expected,
        )
        return Ran(Fail(node_id=task.node_id, lease=lease, error=_error_info(e), retryable=True))


async def _resolved_input(task: Task, payloads: PayloadStore | None) -> Any:
    if payloads is not None:
        return await payloads.resolve(task.input)
    if references_in(task.input):
        raise PayloadsUnavailable("the input references stored payloads, and this worker has no database to read them")
    return task.input


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
