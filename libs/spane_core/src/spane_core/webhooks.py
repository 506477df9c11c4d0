"""Starting workflows from a webhook call: the triggers it matches, its signature, its input.

Any number of workflows may listen on one path and method; a call starts each of them (once per workflow, however
many of its triggers match). A trigger with a ``secret`` needs ``X-Spane-Signature: sha256=<hex HMAC-SHA256 of the
raw body>``; when several workflows listen, every one's signature must hold or none starts. With an idempotency
key, a redelivered call answers the executions the first one started and starts nothing.

A trigger with ``maxAgeSeconds`` also refuses replays: the call needs ``X-Spane-Timestamp: <Unix seconds>`` within
that many seconds of now, and the signature covers ``<timestamp>.<body>``; a call repeated within the window
(the same signature) answers the executions the first one started, as an idempotency key would.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from spane_core.definition import TriggerDef, Workflow
from spane_core.errors import MalformedInput, MethodNotAllowed, NotFound, Unauthenticated
from spane_core.ids import ExecutionId
from spane_core.store.executions import ExecutionStore
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry, normalize_path
from spane_core.usecases import start_execution

DEFAULT_METHOD = "POST"
SIGNATURE_PREFIX = "sha256="
BODYLESS_METHODS = frozenset({"GET", "DELETE"})


@dataclass(frozen=True, slots=True)
class WebhookCall:
    path: str
    method: str
    body: bytes
    signature: str | None = None  # the X-Spane-Signature header
    idempotency_key: str | None = None  # the Idempotency-Key header
    traced: bool = False  # tracing is on: the executions get a trace context
    traceparent: str | None = None  # the caller's W3C traceparent header: their traces hang under its span
    timestamp: str | None = None  # the X-Spane-Timestamp header (Unix seconds), for triggers with maxAgeSeconds
    received_at: float | None = None  # when the call came (Unix seconds); now by default
    # The query's parameters (a repeated one as a list) and its raw text: the input of a body-less GET or DELETE
    # call, and what its signature covers.
    query: dict[str, Any] | None = None
    raw_query: bytes = b""

    @property
    def bodyless(self) -> bool:
        return not self.body.strip() and self.method.upper() in BODYLESS_METHODS


def signature_of(secret: str, body: bytes) -> str:
    """The ``X-Spane-Signature`` value that ``body`` needs under ``secret``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, given: str | None) -> bool:
    # compare_digest whatever was given, so that the time taken says nothing about the expected value.
    return hmac.compare_digest((given or "").strip().lower().encode(), signature_of(secret, body).encode())


def signed_content(body: bytes, timestamp: str | None, max_age: int | None) -> bytes:
    """What a trigger's signature covers: the body, or ``<timestamp>.<body>`` with a replay window."""
    return body if not max_age else f"{timestamp}.".encode() + body


def within_window(timestamp: str | None, max_age: int, now_s: float) -> bool:
    if timestamp is None or not timestamp.strip().isdigit():
        return False
    return abs(now_s - int(timestamp.strip())) <= max_age


def method_of(trigger: TriggerDef) -> str:
    return str(trigger.config.get("method") or DEFAULT_METHOD)


@dataclass(frozen=True, slots=True)
class WebhookStarted:
    """The executions a call started, in registration order, and the one the call waits for, if a trigger asks
    (``waitMs``: the first such): ``(execution id, waitMs)``."""

    execution_ids: list[ExecutionId]
    wait: tuple[ExecutionId, int] | None = None


async def start_from_webhook(
    redis: Redis, workflows: WorkflowRegistry, executions: ExecutionStore, payloads: PayloadStore, call: WebhookCall
) -> WebhookStarted:
    """Start every workflow listening on the call's path and method.

    ``NotFound`` when no workflow listens on the path, ``MethodNotAllowed`` when none on this method,
    ``Unauthenticated`` for a missing or wrong signature, ``MalformedInput`` for a body that is not JSON.
    """
    path = normalize_path(call.path)
    listening = await _listening(workflows, path)
    if not listening:
        raise NotFound(f"no workflow listens on the webhook path {path!r}")
    matching = [(wf, t) for wf, t in listening if method_of(t) == call.method.upper()]
    if not matching:
        allowed = sorted({method_of(t) for _, t in listening})
        raise MethodNotAllowed(f"the webhook path {path!r} takes {', '.join(allowed)}, not {call.method}", allowed)
    now_s = time.time() if call.received_at is None else call.received_at
    windowed = False
    for _, trigger in matching:
        secret = trigger.config.get("secret")
        max_age = trigger.config.get("maxAgeSeconds") if secret else None
        if isinstance(max_age, int) and max_age > 0:
            windowed = True
            if not within_window(call.timestamp, max_age, now_s):
                raise Unauthenticated(f"'X-Spane-Timestamp: <Unix seconds>' within {max_age} s of now is required")
        carrier = call.raw_query if call.bodyless else call.body  # what carries the input is what is signed
        content = signed_content(carrier, call.timestamp, max_age if isinstance(max_age, int) else None)
        if secret and not signature_matches(str(secret), content, call.signature):
            what = "query string" if call.bodyless else "body"
            signed = f"<timestamp>.<{what}>" if windowed else f"the {what}"
            raise Unauthenticated(
                f"a valid 'X-Spane-Signature: {SIGNATURE_PREFIX}<hex HMAC-SHA256 of {signed}>' is required"
            )
    if call.bodyless:
        execution_input: Any = dict(call.query or {})  # a link, a browser: the query is all a GET carries
    else:
        execution_input = _json_body(call.body)
    key = None if not call.idempotency_key else f"webhook:{call.idempotency_key}"
    if key is None and windowed and call.signature:  # a replay within the window starts nothing new
        key = f"webhook-signature:{call.signature.strip().lower()}"
    started: list[ExecutionId] = []
    wait: tuple[ExecutionId, int] | None = None
    waits = {wf.id: t.config["waitMs"] for wf, t in reversed(matching) if isinstance(t.config.get("waitMs"), int)}
    for workflow in {wf.id: wf for wf, _ in matching}.values():
        outcome = await start_execution(
            redis, executions, payloads, workflow, execution_input, key,
            traced=call.traced, caller_traceparent=call.traceparent,
        )  # fmt: skip
        started.append(outcome.state.execution_id)
        if wait is None and workflow.id in waits:
            wait = (outcome.state.execution_id, waits[workflow.id])
    return WebhookStarted(started, wait)


async def _listening(workflows: WorkflowRegistry, path: str) -> list[tuple[Workflow, TriggerDef]]:
    """The latest version of each workflow listening on ``path``, with each of its triggers there."""
    found = []
    for workflow_id in await workflows.webhook_listeners(path):
        latest = await workflows.latest_version(workflow_id)
        if latest is None:  # deleted since the index was read
            continue
        workflow = await workflows.get(workflow_id, latest)
        for trigger in workflow.definition.triggers:
            if trigger.type == "webhook" and normalize_path(str(trigger.config.get("path", ""))) == path:
                found.append((workflow, trigger))
    return found


def _json_body(body: bytes) -> Any:
    if not body.strip():
        raise MalformedInput("a webhook call needs a JSON body (send {} for none)")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise MalformedInput(f"the webhook body is not JSON: {e}") from e
    except RecursionError as e:  # "[[[[...": deeper than the decoder may recurse
        raise MalformedInput("the webhook body's JSON is nested too deeply") from e
