"""Wiring of the worker service: build its resources, run the consumer over every partition, close on stop."""

from __future__ import annotations

import asyncio
import logging

import httpx
from redis.asyncio import Redis
from spane_core import sdk
from spane_core.errors import SpaneError
from spane_core.sdk import ExecutorRegistry, load_plugins
from spane_core.settings import Settings
from spane_core.store.executions import ExecutionStore
from spane_core.store.workflows import WorkflowRegistry

from spane_worker.consumer import Worker
from spane_worker.executors import builtin_executors

log = logging.getLogger("spane.worker")

HTTP_TIMEOUT_S = 30.0


def worker_executors(http: httpx.AsyncClient, registry: ExecutorRegistry | None = None) -> ExecutorRegistry:
    """The built-in node types, then those registered with ``@executor`` (plugins), then ``registry``; a later
    registration of a name replaces an earlier one."""
    executors = builtin_executors(http)
    executors.update(sdk.registry)
    if registry is not None:
        executors.update(registry)
    return executors


async def run_worker(settings: Settings, stop: asyncio.Event, registry: ExecutorRegistry | None = None) -> None:
    """Run a worker until ``stop`` is set; in-flight tasks finish and are committed before it returns."""
    if not settings.redis_url:
        raise SpaneError("the worker needs SPANE_REDIS_URL (only `spane dev` starts an embedded Redis)")
    loaded = load_plugins(settings.plugins)
    redis = Redis.from_url(settings.redis_url)
    http = httpx.AsyncClient(follow_redirects=True, timeout=HTTP_TIMEOUT_S)
    try:
        workflows = WorkflowRegistry(redis)
        store = ExecutionStore(redis, workflows, settings.partitions)
        executors = worker_executors(http, registry)
        worker = Worker(redis, store, workflows, executors, settings)
        log.info(
            "worker %s: %d partition(s), node types %s, plugins %s",
            settings.consumer_name, settings.partitions, ", ".join(executors.names()), ", ".join(loaded) or "none",
        )  # fmt: skip
        await worker.run(stop)
    finally:
        await http.aclose()
        await redis.aclose()
