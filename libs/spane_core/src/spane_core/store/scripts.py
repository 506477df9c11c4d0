"""Lua scripts run with EVALSHA (no Redis Functions, so Redis 6.2+ works), loaded on first NOSCRIPT."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError


class LuaScript:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("spane_core.store").joinpath(f"lua/{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[Any]) -> None:
        # What ``pipe.evalsha`` sends, but redis-py's cluster pipeline refuses ``evalsha`` by name (it routes the
        # raw command by its keys like any other).
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


async def run_pipelined(
    redis: Redis,
    script: LuaScript,
    calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
    errors_as_results: bool = False,
) -> list[Any]:
    """Run many calls of one script in one round trip; load the script once if the server lacks it.

    A call that fails raises its error, or with ``errors_as_results`` takes its place in the results, so that one
    failing call does not hide what became of the others.
    """
    for _ in range(2):
        pipe = redis.pipeline(transaction=False)
        for keys, args in calls:
            script.queue(pipe, keys, args)
        results = await pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in results):
            for r in results:
                if isinstance(r, Exception) and not errors_as_results:
                    raise r
            return list(results)
        await redis.script_load(script.source)
    raise RuntimeError(f"script {script.name} could not be loaded")
