"""The built-in node types that a worker runs (``delay`` and ``sub-workflow`` are carried out by the engine)."""

from __future__ import annotations

import httpx
from spane_core.node_schemas import BUILTIN_NODE_TYPES
from spane_core.sdk import ExecutorRegistry
from spane_core.secrets import Secrets

from spane_worker.executors.condition import condition
from spane_worker.executors.http import HttpLimits, http_executor
from spane_worker.executors.transform import transform


def builtin_executors(
    http: httpx.AsyncClient, secrets: Secrets | None = None, limits: HttpLimits | None = None
) -> ExecutorRegistry:
    registry = ExecutorRegistry()
    registry.register("transform", transform, BUILTIN_NODE_TYPES["transform"])
    registry.register("condition", condition, BUILTIN_NODE_TYPES["condition"])
    registry.register("http", http_executor(http, secrets, limits), BUILTIN_NODE_TYPES["http"])
    return registry
