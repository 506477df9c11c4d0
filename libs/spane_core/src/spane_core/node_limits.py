"""Which shared limits hold a node back: a circuit breaker, rate-limit buckets and a concurrency limit.

Pure: read from the node's definition (``circuitBreaker``, ``rateLimit``) and the per-node-type settings
(``SPANE_CIRCUIT_BREAKERS``, ``SPANE_RATE_LIMITS``, ``SPANE_CONCURRENCY_LIMITS``). Redis keeps their state, shared by
every worker (``spane_core.store.limiter``). A node that none of them names costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from spane_core.definition import NodeDef
from spane_core.errors import FieldError
from spane_core.fields import FieldReader

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_BREAKER_TIMEOUT_MS = 30_000
BREAKER_KEYS = ("failureThreshold", "successThreshold", "timeoutMs", "resetTimeoutMs")
RATE_KEYS = ("max", "perMs", "limit", "intervalMs")


@dataclass(frozen=True, slots=True)
class Breaker:
    name: str  # the node type; for http nodes ``http:<host>``, one breaker per target host
    failure_threshold: int  # consecutive failures that open it
    success_threshold: int  # successful probes that close it again
    timeout_ms: int  # how long it stays open before it lets one probe through


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str  # ``type:<node type>`` or ``node:<workflow id>/<node id>``
    max: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class Concurrency:
    name: str  # the node type
    limit: int


@dataclass(frozen=True, slots=True)
class NodeLimits:
    breaker: Breaker | None = None
    buckets: tuple[Bucket, ...] = ()
    concurrency: Concurrency | None = None


class LimitRules:
    """The limits of each node, from its definition and the per-node-type settings."""

    def __init__(
        self,
        breakers: Mapping[str, Mapping[str, Any]] | None = None,
        rates: Mapping[str, Mapping[str, Any]] | None = None,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        self.breakers = dict(breakers or {})
        self.rates = dict(rates or {})
        self.concurrency = dict(concurrency or {})
        self._typed = frozenset(self.breakers) | frozenset(self.rates) | frozenset(self.concurrency)

    def for_node(self, workflow_id: str, node: NodeDef) -> NodeLimits | None:
        """The limits of ``node`` of workflow ``workflow_id``; None when it has none (the usual case)."""
        if node.circuit_breaker is None and node.rate_limit is None and node.type not in self._typed:
            return None
        breaker_config = node.circuit_breaker if node.circuit_breaker is not None else self.breakers.get(node.type)
        breaker = None if breaker_config is None else _breaker(breaker_name(node), breaker_config)
        buckets = []
        if (rate := self.rates.get(node.type)) is not None:
            buckets.append(_bucket(f"type:{node.type}", rate))
        if node.rate_limit is not None:
            buckets.append(_bucket(f"node:{workflow_id}/{node.id}", node.rate_limit))
        limit = self.concurrency.get(node.type)
        concurrency = None if limit is None else Concurrency(node.type, limit)
        return NodeLimits(breaker, tuple(buckets), concurrency)


def breaker_name(node: NodeDef) -> str:
    """An http node's breaker is its target host's: one failing host must not hold back calls to the others."""
    if node.type == "http":
        url = node.config.get("url")
        host = urlsplit(url).hostname if isinstance(url, str) else None
        if host:
            return f"http:{host}"
    return node.type


def _breaker(name: str, config: Mapping[str, Any]) -> Breaker:
    return Breaker(
        name=name,
        failure_threshold=config.get("failureThreshold") or DEFAULT_FAILURE_THRESHOLD,
        success_threshold=config.get("successThreshold") or DEFAULT_SUCCESS_THRESHOLD,
        timeout_ms=config.get("timeoutMs") or config.get("resetTimeoutMs") or DEFAULT_BREAKER_TIMEOUT_MS,
    )


def _bucket(name: str, config: Mapping[str, Any]) -> Bucket:
    return Bucket(
        name=name, max=config.get("max") or config["limit"], per_ms=config.get("perMs") or config["intervalMs"]
    )


def settings_problems(kind: str, value: Mapping[str, Any]) -> list[FieldError]:
    """What is wrong with a per-node-type setting: ``kind`` is ``circuitBreaker``, ``rateLimit`` or
    ``concurrencyLimit``; ``value`` maps node types to their limit."""
    errors: list[FieldError] = []
    for node_type, config in value.items():
        if kind == "concurrencyLimit":
            FieldReader({node_type: config}, "", errors).integer(node_type, required=True, minimum=1)
            continue
        reader = FieldReader({node_type: config}, "", errors)
        obj = reader.mapping(node_type)
        if obj is None:
            continue
        inner = FieldReader(obj, node_type, errors)
        for key in BREAKER_KEYS if kind == "circuitBreaker" else RATE_KEYS:
            inner.integer(key, minimum=1)
        if kind == "rateLimit" and (
            obj.get("max", obj.get("limit")) is None or obj.get("perMs", obj.get("intervalMs")) is None
        ):
            inner.error("max", "a rate limit needs max (calls per window) and perMs (the window, in ms)")
    return errors
