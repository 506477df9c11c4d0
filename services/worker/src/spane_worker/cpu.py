"""CPU-bound nodes run in a process pool, so that a heavy node cannot hold the worker's event loop (its reads,
commits, leases and heartbeats). The pool starts on the first such node; its processes are spawned afresh (not
forked from a process with a running loop and open connections) and import the executor's module by name."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from spane_core.sdk import Executor, NodeContext, NonRetryableError


class NotPicklable(NonRetryableError):
    """A CPU-bound executor, its context or its result cannot be sent to or from the pool's processes."""


class CpuPool:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Executor, ctx: NodeContext) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        portable = dataclasses.replace(ctx, logger=logging.getLogger(f"spane.executor.{ctx.node_type}"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, _run, fn, portable)
        except (AttributeError, TypeError) as e:
            if "pickle" in str(e):
                raise NotPicklable(f"a CPU-bound node must be a module-level function of picklable data: {e}") from e
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _run(fn: Executor, ctx: NodeContext) -> Any:
    """In a pool process: run the async executor on a loop of its own."""
    return asyncio.run(fn(ctx))  # type: ignore[arg-type]
