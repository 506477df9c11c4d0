"""Every error the API answers with, as an RFC 9457 problem (``application/problem+json``), mapped in one table.

SPANE's own errors map by class; Litestar's (routing 404/405, query validation, body too large, auth) by status.
Anything else is a bug and answers a bare 500 without internals, after logging the traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from spane_core.errors import (
    ConcurrencyError,
    InternalError,
    InvalidInput,
    MalformedInput,
    MethodNotAllowed,
    NotFound,
    PayloadMissing,
    SpaneError,
    StateConflict,
    StorageError,
    Unauthenticated,
)

from spane_api.schemas import FieldProblem, Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# The one table: error class -> (HTTP status, problem type slug). A subclass maps as its nearest listed base.
SPANE_ERRORS: dict[type[SpaneError], tuple[int, str]] = {
    MalformedInput: (400, "malformed-input"),
    InvalidInput: (422, "invalid-input"),
    Unauthenticated: (401, "unauthorized"),
    NotFound: (404, "not-found"),
    MethodNotAllowed: (405, "method-not-allowed"),
    StateConflict: (409, "state-conflict"),
    PayloadMissing: (410, "payload-gone"),
    ConcurrencyError: (409, "concurrent-update"),
    StorageError: (503, "storage-unavailable"),
    InternalError: (500, "internal-error"),
}

# Litestar's own errors, by status: problem type slug and the detail shown when Litestar gives none worth showing.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("malformed-input", "the request is malformed"),
    401: ("unauthorized", "a valid 'Authorization: Bearer <token>' header is required"),
    403: ("forbidden", "this request is not allowed"),
    404: ("not-found", "no such resource"),
    405: ("method-not-allowed", "this method is not allowed on this resource"),
    413: ("body-too-large", "the request body is too large"),
}


def problem_type(slug: str) -> str:
    return f"urn:spane:problem:{slug}"


def problem_response(
    status: int, slug: str, detail: str, errors: list[FieldProblem] | None = None, headers: dict[str, str] | None = None
) -> Response[Problem]:
    body = Problem(
        type=problem_type(slug), title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors or []
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _spane_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    mapped = next((v for cls, v in SPANE_ERRORS.items() if isinstance(exc, cls)), None)
    if mapped is None:
        return _unexpected(request, exc)
    status, slug = mapped
    if status >= 500:
        log.warning("answering %s to %s %s: %s", status, request.method, request.url.path, exc)
    if isinstance(exc, StorageError):  # which store and why is for the log, not for the caller
        return problem_response(status, slug, "a backing store is unavailable; try again later")
    if status >= 500:  # an internal error's message names internals (an exception's repr): logged above only
        return problem_response(status, slug, "an unexpected error occurred; it has been logged")
    errors = exc.errors if isinstance(exc, InvalidInput | MalformedInput) else []
    problems = [FieldProblem(path=e.path, message=e.message) for e in errors]
    headers = {"Allow": ", ".join(exc.allowed)} if isinstance(exc, MethodNotAllowed) else None
    return problem_response(status, slug, str(exc), problems, headers)


def _http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    slug, default_detail = HTTP_ERRORS.get(status, ("client-error", HTTPStatus(status).phrase))
    problems = _litestar_field_problems(exc.extra)
    detail = default_detail if status in (401, 404, 405, 413) or not exc.detail else exc.detail
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return problem_response(status, slug, detail, problems, headers)


def _litestar_field_problems(extra: Any) -> list[FieldProblem]:
    """Litestar's validation errors (``[{"key", "message", "source"}]``) as field problems."""
    if not isinstance(extra, list):
        return []
    problems = []
    for item in extra:
        if isinstance(item, dict) and "message" in item:
            problems.append(FieldProblem(path=str(item.get("key", "")), message=str(item["message"])))
    # Beside a real problem, Litestar lists an optional body that was not sent as one whose message is its quoted
    # key (a KeyError's): "data: 'data'" says nothing.
    real = [p for p in problems if p.message != repr(p.path)]
    return real or problems


def _too_large_number(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # JSON allows integers of any size; SPANE stores values as msgspec-encoded JSON, which holds 64 bits. Only a
    # request's own values can be that large (SPANE makes none), and nothing was stored when encoding failed.
    log.info("answering 400 to %s %s: %s", request.method, request.url.path, exc)
    detail = "a number in the request is out of range: integers must lie between -2**63 and 2**64 - 1"
    return problem_response(400, "malformed-input", detail)


def _too_deep(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # The JSON decoder recurses once per nesting level; a body of "[[[[..." deeper than the interpreter allows is
    # the request's fault (nothing SPANE makes nests that deep), and nothing was stored when decoding failed.
    log.info("answering 400 to %s %s: %s", request.method, request.url.path, exc)
    return problem_response(400, "malformed-input", "the request's JSON is nested too deeply")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal-error", "an unexpected error occurred; it has been logged")


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route may answer with."""
    return {
        status: ResponseSpec(
            Problem, description=HTTPStatus(status).phrase, media_type=PROBLEM_JSON, generate_examples=False
        )
        for status in statuses
    }


def exception_handlers() -> ExceptionHandlersMap:
    return {
        SpaneError: _spane_error,
        HTTPException: _http_error,
        OverflowError: _too_large_number,
        RecursionError: _too_deep,
        Exception: _unexpected,
    }
