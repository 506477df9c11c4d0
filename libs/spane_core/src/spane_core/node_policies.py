"""A node's execution policies, read from its ``config`` (as the TypeScript engine does) or beside it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from spane_core.definition import Backoff, RetryPolicy
from spane_core.errors import FieldError
from spane_core.fields import FieldReader, is_number, join_path, json_type

POLICY_KEYS = ("retryPolicy", "circuitBreaker", "rateLimit", "timeoutMs", "continueOnFail")
# Found in ``config``, these move out of it into the node's fields. ``timeoutMs`` is copied and stays, as the
# http node also reads it there as its request timeout. ``continueOnFail`` (where n8n puts it) is a shorthand for
# the retry policy's own.
MOVED_KEYS = ("retryPolicy", "circuitBreaker", "rateLimit", "continueOnFail")
# Both objects are kept as given; the counts the worker reads (``spane_core.node_limits``) are checked, and a rate limit
# needs its count (``max``, or ``limit`` as the original spelled it) and its window (``perMs``, or ``intervalMs``).
_CIRCUIT_BREAKER_COUNTS = ("failureThreshold", "successThreshold", "timeoutMs", "resetTimeoutMs")
_RATE_LIMIT_COUNTS = ("max", "perMs", "limit", "intervalMs")
_RATE_LIMIT_NEEDS = (("max", "limit"), ("perMs", "intervalMs"))


@dataclass(frozen=True, slots=True)
class NodePolicies:
    retry_policy: RetryPolicy | None = None
    circuit_breaker: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    timeout_ms: int | None = None


def read_policies(
    config: Mapping[str, Any], beside: Mapping[str, Any], node_path: str, errors: list[FieldError]
) -> NodePolicies:
    """The policies of the node at ``node_path``; a policy given in both places must have the same value."""
    sources: dict[str, FieldReader] = {}
    for key in POLICY_KEYS:
        inside, outside = config.get(key), beside.get(key)
        if inside is not None and outside is not None and inside != outside:
            message = f"{key} is given both in config and beside it, with different values; give it once"
            errors.append(FieldError(join_path(node_path, key), message))
        elif outside is not None:
            sources[key] = FieldReader(beside, node_path, errors)
        elif inside is not None:
            sources[key] = FieldReader(config, join_path(node_path, "config"), errors)
    retry, breaker, limit, timeout, continues = (sources.get(key) for key in POLICY_KEYS)
    retry_policy = None if retry is None else _retry_policy(retry)
    if continues is not None:
        retry_policy = _continuing(retry_policy, retry, continues)
    return NodePolicies(
        retry_policy=retry_policy,
        circuit_breaker=None if breaker is None else _counts(breaker, "circuitBreaker", _CIRCUIT_BREAKER_COUNTS),
        rate_limit=None if limit is None else _rate_limit(limit),
        timeout_ms=None if timeout is None else timeout.integer("timeoutMs", minimum=1),
    )


def _retry_policy(source: FieldReader) -> RetryPolicy | None:
    obj = source.mapping("retryPolicy")
    if obj is None:
        return None
    errors_before = len(source.errors)
    reader = FieldReader(obj, source.path("retryPolicy"), source.errors)
    fields: dict[str, Any] = {
        "max_attempts": reader.integer("maxAttempts", minimum=1, maximum=100),
        "continue_on_fail": reader.boolean("continueOnFail"),
    }
    backoff = reader.mapping("backoff")
    if backoff is not None:
        fields["backoff"] = _backoff(FieldReader(backoff, reader.path("backoff"), source.errors))
    if len(source.errors) > errors_before:
        return None
    return RetryPolicy(**{name: value for name, value in fields.items() if value is not None})


def _continuing(policy: RetryPolicy | None, retry: FieldReader | None, source: FieldReader) -> RetryPolicy | None:
    """The retry policy with the ``continueOnFail`` given on its own; the policy's own, if it names one, must agree."""
    value = source.boolean("continueOnFail")
    if value is None:
        return policy
    named = None if retry is None else retry.obj.get("retryPolicy")
    if isinstance(named, Mapping) and "continueOnFail" in named and named["continueOnFail"] != value:
        source.error("continueOnFail", "continueOnFail differs from the retryPolicy's; give it once")
        return policy
    return msgspec.structs.replace(policy or RetryPolicy(), continue_on_fail=value)


def _backoff(reader: FieldReader) -> Backoff:
    fields: dict[str, Any] = {
        "type": reader.choice("type", ("fixed", "exponential")),
        "delay": reader.integer("delay", minimum=0),
        "max_delay": reader.integer("maxDelay", minimum=0),
    }
    match reader.obj.get("jitter"):
        case None:
            pass
        case bool() as jitter:
            fields["jitter"] = jitter
        case jitter if is_number(jitter) and 0 <= jitter <= 1:
            # A float always, so that a stored definition decodes and re-encodes to the same bytes.
            fields["jitter"] = float(jitter)
        case jitter:
            shown = jitter if is_number(jitter) else json_type(jitter)
            reader.error("jitter", f"jitter must be true, false or a number from 0 to 1, got {shown}")
    backoff = Backoff(**{name: value for name, value in fields.items() if value is not None})
    if backoff.max_delay is not None and backoff.max_delay < backoff.delay:
        reader.error("maxDelay", f"maxDelay ({backoff.max_delay}) must not be less than delay ({backoff.delay})")
    return backoff


def _counts(source: FieldReader, key: str, counts: tuple[str, ...]) -> dict[str, Any] | None:
    obj = source.mapping(key)
    if obj is None:
        return None
    reader = FieldReader(obj, source.path(key), source.errors)
    for name in counts:
        reader.integer(name, minimum=1)
    return obj


def _rate_limit(source: FieldReader) -> dict[str, Any] | None:
    obj = _counts(source, "rateLimit", _RATE_LIMIT_COUNTS)
    if obj is None:
        return None
    for name, alias in _RATE_LIMIT_NEEDS:
        if obj.get(name) is None and obj.get(alias) is None:
            message = f"a rate limit needs max (calls per window) and perMs (the window, in ms); {name} is missing"
            source.error("rateLimit", message)
    return obj
