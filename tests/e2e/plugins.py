"""Custom node types that the e2e system's worker loads through SPANE_PLUGINS."""

from __future__ import annotations

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
