"""Custom node types that the e2e system's worker loads through SPANE_PLUGINS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spane_core.sdk import NodeContext, NonRetryableError, executor


@executor("flaky")
async def flaky(ctx: NodeContext) -> Any:
    """Fails until the try named by config.succeedOn (default 2)."""
    if ctx.attempt < int(ctx.config.get("succeedOn", 2)):
        raise RuntimeError(f"try {ctx.attempt} failed on purpose")
    return {"attempt": ctx.attempt, "input": ctx.input}


@executor("always-fails")
async def always_fails(ctx: NodeContext) -> Any:
    raise NonRetryableError("this node always fails")


@executor("needs-ok")
async def needs_ok(ctx: NodeContext) -> Any:
    """Fails for good unless its input has ``ok: true``: a dead letter that a retry with edited input fixes."""
    if not (isinstance(ctx.input, dict) and ctx.input.get("ok") is True):
        raise NonRetryableError(f"input {ctx.input!r} is not ok")
    return {"fixed": True}


@executor("sleep")
async def sleep(ctx: NodeContext) -> Any:
    """Waits config.ms milliseconds without blocking the loop, then passes its input on."""
    await asyncio.sleep(int(ctx.config.get("ms", 0)) / 1000)
    return ctx.input


@executor("burn", cpu=True)
async def burn(ctx: NodeContext) -> Any:
    """CPU-bound: spins for config.seconds (default 1); runs in the worker's process pool."""
    end = time.monotonic() + float(ctx.config.get("seconds", 1))
    spins = 0
    while time.monotonic() < end:
        spins += 1
    return {"spins": spins > 0}


@executor("hog")
async def hog(ctx: NodeContext) -> Any:
    """Blocks the worker's event loop for config.ms (what a CPU-bound node not marked cpu=True does)."""
    time.sleep(int(ctx.config.get("ms", 500)) / 1000)  # noqa: ASYNC251 (blocking on purpose)
    return ctx.input
