"""``/health`` (the process lives), ``/ready`` (Redis and Postgres answer), ``/metrics`` (Prometheus) and
``/asyncapi`` (the streams between the services)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from spane_core.keys import STATS, WORKER_LAG
from spane_core.observe.asyncapi import asyncapi_document
from spane_core.store.transient import TRANSIENT

from spane_api.deps import Deps
from spane_api.schemas import Health, Readiness

log = logging.getLogger("spane.api")

CHECK_TIMEOUT_S = 2.0


@get("/health", summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


@get(
    "/ready",
    summary="Readiness: Redis and Postgres answer",
    responses={HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(Readiness, description="Which dependency failed")},
)
async def ready(deps: Deps) -> Response[Readiness]:
    redis, postgres = await asyncio.gather(_check(_ping_redis(deps)), _check(_ping_postgres(deps)))
    if postgres == "ok" and not deps.schema_ready.is_set():
        postgres = "error: the read-model schema is not migrated yet"
    checks = {"redis": redis, "postgres": postgres}
    ok = all(value == "ok" for value in checks.values())
    status = HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE
    return Response(Readiness(status="ok" if ok else "unavailable", checks=checks), status_code=status)


async def _ping_redis(deps: Deps) -> None:
    await deps.redis.ping()


async def _ping_postgres(deps: Deps) -> None:
    async with deps.db.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_S}s"
    except Exception as e:  # any failure of the probe is the answer: its kind to the caller, its detail to the log
        # /ready is open: the message (a host and port, a user name) is for the operator, not for anyone who asks.
        log.warning("readiness check failed: %s: %s", type(e).__name__, e)
        return f"error: {type(e).__name__}"
    return "ok"


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(deps: Deps) -> Response[bytes]:
    """Every metric of this process (under `spane dev`, of all four services), the shared state's read afresh."""
    await deps.system.refresh()
    # The counters every service shares live in Redis; while it is away the last values read are reported.
    with contextlib.suppress(TimeoutError, *TRANSIENT):
        deps.metrics.shared.update(await asyncio.wait_for(deps.redis.hgetall(STATS), CHECK_TIMEOUT_S))
    with contextlib.suppress(TimeoutError, *TRANSIENT):
        lags = await asyncio.wait_for(deps.redis.hgetall(WORKER_LAG), CHECK_TIMEOUT_S)
        deps.metrics.set_worker_lag(lags, time.time())
    with contextlib.suppress(TimeoutError, *TRANSIENT):  # the shared limits: circuit breakers, throttled nodes
        limits = asyncio.gather(deps.limiter.stats(), deps.limiter.breakers())
        stats, breakers = await asyncio.wait_for(limits, CHECK_TIMEOUT_S)
        deps.metrics.limits.update(stats, breakers, deps.telemetry.metrics.circuit_breakers)
    process = deps.telemetry.metrics
    # Litestar adds the charset to a text/* type itself: named twice, the header would carry it twice.
    media_type = "; ".join(p for p in process.content_type.split("; ") if not p.startswith("charset="))
    return Response(process.render(), media_type=media_type)


@get("/asyncapi", summary="AsyncAPI document of the streams between the services")
async def asyncapi() -> dict[str, Any]:
    return asyncapi_document(_version())


def _version() -> str:
    try:
        return version("spane-api")
    except PackageNotFoundError:
        return "0.0.0"


HANDLERS = [health, ready, metrics, asyncapi]
