"""``/api/webhooks/{path}``: start the workflows listening on a path. Open without the API token: a trigger's
secret guards it (``X-Spane-Signature``). The rules are the core's (``spane_core.webhooks``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, route
from litestar.enums import HttpMethod
from litestar.params import FromPath
from litestar.status_codes import HTTP_202_ACCEPTED
from spane_core.webhooks import WebhookCall, start_from_webhook

from spane_api.deps import Deps
from spane_api.problems import problem_responses
from spane_api.schemas import WebhookAccepted

METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]


@route(
    "/{path:path}",
    http_method=METHODS,
    status_code=HTTP_202_ACCEPTED,
    summary="Start every workflow whose webhook trigger matches this path and method, with the JSON body as input",
    description="A trigger with a `secret` needs `X-Spane-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. "
    "An `Idempotency-Key` header makes a redelivered call start nothing new (the same execution ids answer). "
    "A trigger with `maxAgeSeconds` needs `X-Spane-Timestamp: <Unix seconds>` within that window and signs "
    "`<timestamp>.<raw body>`; a replay within it starts nothing new.",
    responses=problem_responses(400, 401, 404, 405, 413),
)
async def webhook(path: FromPath[str], request: Request[Any, Any, Any], deps: Deps) -> WebhookAccepted:
    call = WebhookCall(
        path=path,
        method=request.method,
        body=await request.body(),
        signature=request.headers.get("x-spane-signature"),
        idempotency_key=request.headers.get("idempotency-key"),
        traced=deps.telemetry.tracing,
        traceparent=request.headers.get("traceparent"),
        timestamp=request.headers.get("x-spane-timestamp"),
    )
    started = await start_from_webhook(deps.redis, deps.workflows, deps.executions, deps.payloads, call)
    return WebhookAccepted(execution_ids=list(started))


HANDLERS = [webhook]
