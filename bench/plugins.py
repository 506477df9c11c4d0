"""The benchmark's own node type: a no-op (its output is its input) that runs under the per-node-type limits
``bench/spane_system.py`` configures (a circuit breaker, a rate limit and a concurrency limit), for the
``diamond-limited`` workload."""

from __future__ import annotations

from typing import Any

from spane_core.sdk import NodeContext, executor


@executor("limited")
async def limited(ctx: NodeContext) -> Any:
    return ctx.input
