"""``/api/circuit-breakers`` and ``/api/rate-limits``: the shared limits as every worker sees them, and closing a
breaker by hand."""

from __future__ import annotations

from litestar import get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_202_ACCEPTED
from spane_core.errors import NotFound

from spane_api.deps import Deps
from spane_api.problems import problem_responses
from spane_api.schemas import BreakerItem, BreakerReset, Breakers, BucketItem, Buckets
from spane_api.views import iso_or_none


@get("/circuit-breakers", summary="List the circuit breakers, with their state and counts")
async def list_breakers(deps: Deps) -> Breakers:
    return Breakers(
        items=[
            BreakerItem(
                name=b.name,
                state=b.state,
                failures=b.failures,
                successes=b.successes,
                open_until=iso_or_none(b.open_until),
                failure_threshold=b.failure_threshold,
                success_threshold=b.success_threshold,
                timeout_ms=b.timeout_ms,
            )
            for b in await deps.limiter.breakers()
        ]
    )


@post(
    "/circuit-breakers/{name:str}/reset",
    summary="Close a circuit breaker; the nodes it deferred run at once",
    status_code=HTTP_202_ACCEPTED,
    responses=problem_responses(404),
)
async def reset_breaker(name: FromPath[str], deps: Deps) -> BreakerReset:
    if not await deps.limiter.reset_breaker(name):
        raise NotFound(f"circuit breaker {name!r} not found")
    return BreakerReset(name=name, state="closed")


@get("/rate-limits", summary="List the rate-limit buckets, with the tokens available now")
async def list_buckets(deps: Deps) -> Buckets:
    return Buckets(
        items=[
            BucketItem(name=b.name, max=b.max, per_ms=b.per_ms, available=b.available, reserved=b.reserved)
            for b in await deps.limiter.buckets()
        ]
    )


HANDLERS = [list_breakers, reset_breaker, list_buckets]
