"""``http``: one HTTP request through the worker's shared ``httpx.AsyncClient``.

Config: ``url``, ``method`` (GET), ``headers``, ``query``, ``body`` (default: the node input for POST, PUT and
PATCH; a string is sent as is, anything else as JSON), ``timeoutMs``. The strings of ``url``, ``headers``,
``query`` and ``body`` are templates: ``{{ expression }}`` on the input, ``{{ $secrets.NAME }}`` (``templating``).

Every request carries an ``Idempotency-Key`` header (``executionId:nodeId:attempt``, unless ``headers`` names one)
that stays the same when a worker runs a try again after a crash, so the receiving service can recognise the repeat,
and, when the execution is traced, a W3C ``traceparent`` naming the try's span (unless ``headers`` names one).
Output: ``{"status", "headers", "body"}``, the body parsed when the response is JSON. A 4xx answer other than 408
and 429 is final (``NonRetryableError``); 5xx, 408, 429 and network errors raise retryable errors, so the node's
retry policy applies. A body larger than ``limits.max_response_bytes`` (``SPANE_HTTP_MAX_RESPONSE_BYTES``, after
decompression) is not read on: the node fails for good; a call longer than ``limits.max_call_s``
(``SPANE_HTTP_MAX_CALL_S``) is given up and retried. A redirect to another origin does not carry on the
configured headers that hold credentials (``http_redirects``). Errors show the URL without its credentials and
query values (``http_redact``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from spane_core.errors import HttpCallTooSlow, HttpClientError, HttpResponseTooLarge, HttpStatusError
from spane_core.node_schemas import HEADER_NAME
from spane_core.sdk import Executor, NodeContext, NonRetryableError
from spane_core.secrets import Secrets

from spane_worker.executors import http_redirects
from spane_worker.executors.http_redact import shown_url
from spane_worker.executors.templating import Renderer

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_response_bytes: int = 10 * 1024 * 1024  # of an answer's body, decompressed
    max_call_s: float = 300.0  # for the whole call, the answer read whole


def build_request(
    client: httpx.AsyncClient,
    config: Mapping[str, Any],
    data: Any,
    idempotency_key: str | None = None,
    traceparent: str | None = None,
    renderer: Renderer | None = None,
) -> httpx.Request:
    """The request ``config`` describes for the input ``data``, its templates filled in by ``renderer`` (by
    default one with the worker's environment for secrets)."""
    render = renderer if renderer is not None else Renderer(data, Secrets())
    method = str(config.get("method") or "GET").upper()
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise NonRetryableError("http.url is required")
    url = render.url(url)
    shown = render.hide(url)  # before repr(), which would escape a secret's characters out of recognition
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
        raise NonRetryableError(f"http.url must be an absolute http:// or https:// URL once filled in, got {shown!r}")
    body = render.value(config["body"]) if "body" in config else (data if method in BODY_METHODS else None)
    content: str | None = None
    json_body: Any = None
    if isinstance(body, str):
        content = body
    elif body is not None:
        json_body = body
    timeout_ms = config.get("timeoutMs")
    extensions = {}
    if isinstance(timeout_ms, int | float) and timeout_ms > 0:
        extensions["timeout"] = httpx.Timeout(timeout_ms / 1000).as_dict()
    headers = _sendable({str(k): render.text(str(v)) for k, v in (config.get("headers") or {}).items()})
    if idempotency_key and not any(k.lower() == "idempotency-key" for k in headers):
        headers["Idempotency-Key"] = idempotency_key
    if traceparent and not any(k.lower() == "traceparent" for k in headers):
        headers["traceparent"] = traceparent
    # ``query`` adds to the URL's own query (replacing a parameter of the same name); httpx's ``params`` would
    # drop the URL's query altogether.
    params = {str(k): _query_value(render.value(v)) for k, v in (config.get("query") or {}).items()}
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise NonRetryableError(f"http.url {shown!r} is not a valid URL: {render.hide(str(e))}") from None
    if params:
        target = target.copy_merge_params(params)
    return client.build_request(method, target, headers=headers, content=content, json=json_body, extensions=extensions)


def _sendable(headers: dict[str, str]) -> dict[str, str]:
    """The filled-in headers as a request can carry them: the blanks around a value dropped (they are no part of
    it, and h11 refuses them). One that no try could send fails the node for good, naming the header, not its value
    (which may hold a secret)."""
    sendable = {}
    for name, value in headers.items():
        if HEADER_NAME.match(name) is None:  # a definition stored before names were checked
            raise NonRetryableError(f"http.headers[{name!r}] is not a valid header name")
        if "\r" in value or "\n" in value:  # no header may be smuggled in by a value from the input
            raise NonRetryableError(f"http.headers[{name!r}] holds a line break once filled in")
        if not (name + value).isascii():  # HTTP carries headers as ASCII
            raise NonRetryableError(
                f"http.headers[{name!r}] holds a character that is not ASCII once filled in"
                " (send such text in the body or the query)"
            )
        if any((c < " " and c != "\t") or c == "\x7f" for c in value):
            raise NonRetryableError(f"http.headers[{name!r}] holds a control character once filled in")
        sendable[name] = value.strip(" \t")
    return sendable


def _query_value(value: Any) -> str | list[str]:
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # not Python's repr
    return "" if value is None else str(value)


async def read_body(response: httpx.Response, request: httpx.Request, limit: int) -> bytes:
    """The (decompressed) body of a streamed ``response``, read no further than ``limit`` bytes."""
    too_large = f"the answer of {request.method} {shown_url(request.url)} is larger than {limit} bytes"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise HttpResponseTooLarge(too_large + " (SPANE_HTTP_MAX_RESPONSE_BYTES)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise HttpResponseTooLarge(too_large + " (SPANE_HTTP_MAX_RESPONSE_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(response: httpx.Response, content: bytes) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = content.decode(response.encoding or "utf-8", errors="replace")
    body: Any = text
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            body = json.loads(text)
        except ValueError:
            body = text  # declared JSON but is not: keep the text rather than fail the node
    headers: dict[str, str] = {}
    for key, value in response.headers.multi_items():
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return {"status": response.status_code, "headers": headers, "body": body}


def check_status(response: httpx.Response, request: httpx.Request) -> None:
    status = response.status_code
    where = f"{request.method} {shown_url(request.url)}"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        raise HttpClientError(f"HTTP {status} from {where}")
    if status >= 500 or status in RETRYABLE_4XX:
        raise HttpStatusError(f"HTTP {status} from {where}")


def http_executor(
    client: httpx.AsyncClient, secrets: Secrets | None = None, limits: HttpLimits | None = None
) -> Executor:
    """The ``http`` executor bound to the worker's shared client and its secrets (by default, its environment's),
    within ``limits`` (by default, ``HttpLimits()``)."""
    known = secrets if secrets is not None else Secrets()
    bounds = limits if limits is not None else HttpLimits()
    # httpx logs every request at INFO with its whole URL, a key in its query with it (even when SPANE is embedded
    # in an application with logging of its own); the worker logs what it needs of a failed node itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    http_redirects.install(client)

    async def http(ctx: NodeContext) -> dict[str, Any]:
        renderer = Renderer(ctx.input, known)
        try:
            request = build_request(client, ctx.config, ctx.input, ctx.idempotency_key, ctx.traceparent, renderer)
            private = http_redirects.private_headers(request, ctx.config.get("headers") or {}, renderer.used)
            deadline = asyncio.timeout(bounds.max_call_s)
            try:
                async with deadline:
                    with renderer.sending(), http_redirects.sending(request, private):
                        response = await client.send(request, stream=True)
                    try:
                        check_status(response, request)
                        content = await read_body(response, request, bounds.max_response_bytes)
                    finally:
                        await response.aclose()
            except TimeoutError as e:
                if deadline.expired():  # ours, not one the transport raised
                    where = f"{request.method} {shown_url(request.url)}"
                    raise HttpCallTooSlow(f"{where} took longer than {bounds.max_call_s:g} s") from e
                raise
            return read_response(response, content)
        except Exception as e:
            renderer.redact(e)  # its message goes into the log (node.failed) and the worker's own log
            raise

    return http
