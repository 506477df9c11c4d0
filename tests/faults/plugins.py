"""The node type of the fault suite's workflow, loaded by its workers through SPANE_PLUGINS: a node that takes a
little while, so that kills find nodes running."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from spane_core.sdk import NodeContext, executor


@executor("fault-slow")
async def fault_slow(ctx: NodeContext) -> Any:
    await asyncio.sleep(random.uniform(0.05, 0.3))
    return {"node": ctx.node_id}
