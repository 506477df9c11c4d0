"""The built-in node types that a worker runs (``delay`` is carried out by the engine itself)."""

from __future__ import annotations

import httpx
from spane_core.node_schemas import BUILTIN_NODE_TYPES
from spane_core.sdk import ExecutorRegistry, NodeContext, NonRetryableError

from spane_worker.executors.condition import condition
from spane_worker.executors.http import http_executor
from spane_worker.executors.transform import transform


async def sub_workflow(ctx: NodeContext) -> None:
    raise NonRetryableError("sub-workflow nodes are not supported yet")


def builtin_executors(http: httpx.AsyncClient) -> ExecutorRegistry:
    registry = ExecutorRegistry()
    registry.register("transform", transform, BUILTIN_NODE_TYPES["transform"])
    registry.register("condition", condition, BUILTIN_NODE_TYPES["condition"])
    registry.register("http", http_executor(http), BUILTIN_NODE_TYPES["http"])
    registry.register("sub-workflow", sub_workflow, BUILTIN_NODE_TYPES["sub-workflow"])
    return registry
