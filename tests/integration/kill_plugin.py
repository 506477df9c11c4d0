"""A slow node type for the kill test, loaded by the worker process through ``SPANE_PLUGINS=kill_plugin``."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from spane_core.sdk import NodeContext, executor


@executor("slow")
async def slow(ctx: NodeContext) -> Any:
    await asyncio.sleep(random.uniform(0.05, 0.25))
    return {"node": ctx.node_id, "attempt": ctx.attempt}
