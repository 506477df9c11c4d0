"""``/api/webhooks/{path}``: start the workflows listening on a path. Open without the API token: a trigger's
secret guards it (``X-Spane-Signature``). The rules are the core's (``spane_core.webhooks``)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, route
from litestar.enums import HttpMethod
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from spane_core.state import ExecutionStatus
from spane_core.webhooks import WebhookCall, start_from_webhook

from spane_api.awaiting import finished_within
from spane_api.deps import Deps
from spane_api.problems import problem_response, problem_responses
from spane_api.schemas import WebhookAccepted

METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]


@route(
    "/{path:path}",
    http_method=METHODS,
    status_code=HTTP_202_ACCEPTED,
    summary="Start every workflow whose webhook trigger matches this path and method, with the JSON body as input",
    description="A GET or DELETE without a body starts them with its query parameters as input (a parameter given "
    "twice as a list). "
    "A trigger with a `secret` needs `X-Spane-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (of the raw "
    "query string, for a call without a body). "
    "An `Idempotency-Key` header makes a redelivered call start nothing new (the same execution ids answer). "
    "A trigger with `maxAgeSeconds` needs `X-Spane-Timestamp: <Unix seconds>` within that window and signs "
    "`<timestamp>.<raw body>`; a replay within it starts nothing new. "
    "A trigger with `waitMs` holds the call until its execution has finished: 200 with the execution's output, "
    "502 when it failed or was cancelled, 202 as usual when it had not finished in time.",
    responses={
        HTTP_200_OK: ResponseSpec(Any, description="The output of the execution the trigger waited for"),
        **problem_responses(400, 401, 404, 405, 413, 502),
    },
)
async def webhook(path: FromPath[str], request: Request[Any, Any, Any], deps: Deps) -> Response[Any]:
    call = WebhookCall(
        path=path,
        method=request.method,
        body=await request.body(),
        signature=request.headers.get("x-spane-signature"),
        idempotency_key=request.headers.get("idempotency-key"),
        traced=deps.telemetry.tracing,
        traceparent=request.headers.get("traceparent"),
        timestamp=request.headers.get("x-spane-timestamp"),
        query=_query(request),
        raw_query=request.scope.get("query_string", b""),
    )
    started = await start_from_webhook(deps.redis, deps.workflows, deps.executions, deps.payloads, call)
    if started.wait is not None:
        execution_id, wait_ms = started.wait
        final = await finished_within(deps.hub, deps.executions, execution_id, wait_ms)
        if final is not None and final.status is ExecutionStatus.COMPLETED:
            (output,) = await deps.payloads.resolve_many([final.output])
            # Encoded here: Litestar would send a string output as plain text, not as the JSON string it is.
            return Response(msgspec.json.encode(output), status_code=HTTP_200_OK, media_type=MediaType.JSON)
        if final is not None:  # the caller is not told why: that is for those with the API token
            detail = f"execution {execution_id} {final.status}; GET /api/executions/{execution_id} says why"
            return problem_response(502, "execution-not-completed", detail)
    return Response(WebhookAccepted(execution_ids=list[str](started.execution_ids)), status_code=HTTP_202_ACCEPTED)


HANDLERS = [webhook]


def _query(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The query string as an object: a parameter given once is a string, a repeated one a list of them."""
    return {k: v[0] if len(v) == 1 else v for k, v in request.query_params.dict().items()}
