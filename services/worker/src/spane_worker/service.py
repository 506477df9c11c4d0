"""Wiring of the worker service: build its resources, run the consumer over every partition, close on stop."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from spane_core import sdk
from spane_core.errors import ConfigurationError
from spane_core.observe.otel import exporter_from_env, tracer_provider
from spane_core.observe.telemetry import Telemetry
from spane_core.readmodel import migrate
from spane_core.sdk import ExecutorRegistry, load_plugins
from spane_core.secrets import Secrets
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.payloads import PayloadStore
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry

from spane_worker.consumer import Worker
from spane_worker.executors import builtin_executors
from spane_worker.executors.http import HttpLimits
from spane_worker.executors.http_guard import AddressGuard, guarded_client, networks
from spane_worker.executors.templating import hide_secrets_in_span

log = logging.getLogger("spane.worker")

HTTP_TIMEOUT_S = 30.0
# Postgres holds only the large payloads for a worker: a few connections serve its batched reads and writes.
DB_POOL_SIZE = 4
DB_COMMAND_TIMEOUT_S = 10.0


def traced_client(http: httpx.AsyncClient) -> TracerProvider | None:
    """Trace ``http``'s requests (a client span under the node try's span, and its ``traceparent`` sent on), with
    a tracer provider of this worker's own; None when the environment names no exporter."""
    exporter = exporter_from_env()
    if exporter is None:
        return None
    provider = tracer_provider("spane-worker", exporter)
    HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider, request_hook=hide_secrets_in_span)
    return provider


def worker_executors(
    http: httpx.AsyncClient,
    registry: ExecutorRegistry | None = None,
    secrets: Secrets | None = None,
    limits: HttpLimits | None = None,
) -> ExecutorRegistry:
    """The built-in node types, then those registered with ``@executor`` (plugins), then ``registry``; a later
    registration of a name replaces an earlier one. ``limits`` bound the http node's calls (the defaults else)."""
    executors = builtin_executors(http, secrets, limits)
    executors.update(sdk.registry)
    if registry is not None:
        executors.update(registry)
    return executors


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    registry: ExecutorRegistry | None = None,
    *,
    telemetry: Telemetry | None = None,
) -> None:
    """Run a worker until ``stop`` is set; in-flight tasks finish and are committed before it returns."""
    telemetry = telemetry if telemetry is not None else Telemetry.from_env()
    if not settings.redis_url or not settings.database_url:
        raise ConfigurationError(
            "the worker needs SPANE_REDIS_URL and SPANE_DATABASE_URL (large values are stored in Postgres;"
            " only `spane dev` starts embedded servers)"
        )
    loaded = load_plugins(settings.plugins)
    redis = open_redis(settings)
    # min_size=0: the worker starts, and runs nodes whose values are inline, while Postgres is still down.
    db = await asyncpg.create_pool(
        settings.database_url, min_size=0, max_size=DB_POOL_SIZE, command_timeout=DB_COMMAND_TIMEOUT_S
    )
    guard = AddressGuard(networks(settings.http_deny), networks(settings.http_allow))
    http = guarded_client(guard, HTTP_TIMEOUT_S)
    tracer = traced_client(http) if telemetry.tracing else None
    try:
        workflows = WorkflowRegistry(redis)
        store = redis_execution_store(redis, workflows, settings.partitions)
        limits = HttpLimits(settings.http_max_response_bytes, settings.http_max_call_s)
        executors = worker_executors(http, registry, Secrets(settings.secrets_dir), limits)
        # ``migrate`` before the first payload: this worker may store one before the projector created the table.
        payloads = PayloadStore(db, settings.payload_inline_max, settings.payload_cache_bytes, prepare=migrate)
        worker = Worker(
            redis, store, workflows, executors, settings,
            payloads=payloads, metrics=telemetry.metrics, traced=tracer is not None,
        )  # fmt: skip
        log.info(
            "worker %s: %d partition(s), node types %s, plugins %s",
            settings.consumer_name, settings.partitions, ", ".join(executors.names()), ", ".join(loaded) or "none",
        )  # fmt: skip
        await worker.run(stop)
    finally:
        if tracer is not None:
            tracer.shutdown()
        await http.aclose()
        await db.close()
        await redis.aclose()
