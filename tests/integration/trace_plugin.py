"""A node type that takes its time (``config.ms``), for the tracing test's worker processes (``SPANE_PLUGINS``)."""

from __future__ import annotations

import asyncio
from typing import Any

from spane_core.sdk import NodeContext, executor


@executor("nap")
async def nap(ctx: NodeContext) -> Any:
    ctx.logger.info("napping %s ms", ctx.config.get("ms", 0))
    await asyncio.sleep(int(ctx.config.get("ms", 0)) / 1000)
    return {"node": ctx.node_id, "attempt": ctx.attempt}
