"""The API's own Prometheus metrics (HTTP requests), in the process's registry (``spane_core.observe``), and their
middleware."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from spane_core.store.connection import as_text
from spane_core.store.limiter import BreakerView

# A worker that has not published its loop lag for this long is gone: its series is dropped.
WORKER_LAG_STALE_S = 60

BREAKER_STATES = ("closed", "open", "half_open")

# Counters that every process adds to in Redis (``spane:stats``), reported here for the whole system.
SHARED_COUNTERS = {
    "executions_failed_internal": (
        "spane_executions_failed_internal",
        "Executions failed by an internal error: the store refused, for good, to record one of their transitions.",
    ),
}


class SharedCounters(Collector):
    """The shared counters as last read (``update``, before each scrape)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def update(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        self.values = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    def collect(self) -> Iterator[CounterMetricFamily]:
        for key, (name, help_text) in SHARED_COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=self.values.get(key, 0.0))


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "spane_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spane_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.workflows_registered = Counter(
            "spane_workflow_versions_registered",
            "New workflow versions stored through the API.",
            registry=self.registry,
        )
        self.sse_streams = Gauge(
            "spane_sse_streams", "Server-sent event streams open on this API process.", registry=self.registry
        )
        self.shared = SharedCounters()
        self.registry.register(self.shared)

        self.worker_loop_lag = Gauge(
            "spane_worker_event_loop_lag_seconds",
            "The worst event-loop lag of each live worker in its last period (a node blocking the loop shows here).",
            ["worker"],
            registry=self.registry,
        )
        self.limits = LimitsCollector()
        self.registry.register(self.limits)
        self.dlq_retries = Counter("spane_dlq_retries", "Dead letters retried through the API.", registry=self.registry)
        self.dlq_deleted = Counter("spane_dlq_deleted", "Dead letters deleted through the API.", registry=self.registry)

    def set_worker_lag(self, published: Mapping[bytes | str, bytes | str], now_s: float) -> None:
        """The workers' lags as they published them (``spane_core.keys.WORKER_LAG``)."""
        self.worker_loop_lag.clear()
        for worker, value in published.items():
            lag, _, at = as_text(value).partition("|")
            if at and now_s - int(at) <= WORKER_LAG_STALE_S:
                self.worker_loop_lag.labels(as_text(worker)).set(float(lag))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class LimitsCollector(Collector):
    """The shared limits' counters as last read from Redis (``update``, before each scrape): totals of every
    worker. The breakers' states go to the process's ``spane_circuit_breaker_state`` gauge."""

    def __init__(self) -> None:
        self.stats: Mapping[str, int] = {}

    def update(self, stats: Mapping[str, int], breakers: Sequence[BreakerView], states: Gauge) -> None:
        self.stats = stats
        states.clear()
        for b in breakers:
            for state in BREAKER_STATES:
                states.labels(b.name, state).set(1 if b.state == state else 0)

    def collect(self) -> Iterator[CounterMetricFamily]:
        transitions = CounterMetricFamily(
            "spane_circuit_breaker_transitions",
            "Circuit breaker state changes, by breaker and the state entered.",
            labels=["breaker", "state"],
        )
        throttled = CounterMetricFamily(
            "spane_throttled_nodes",
            "Nodes deferred by a shared limit, by reason (circuit-breaker, rate-limit, concurrency-limit) and limit.",
            labels=["reason", "limit"],
        )
        for key, value in self.stats.items():
            kind, first, second = ([*key.split("|", 2), "", ""])[:3]
            if kind == "transitions":
                transitions.add_metric([first, second], value)
            elif kind == "throttled":
                throttled.add_metric([first, second], value)
        yield transitions
        yield throttled


class MetricsMiddleware:
    """Counts and times every routed HTTP request under its route template (``/api/executions/{execution_id}``).

    Litestar runs app middleware inside routing: a request that matches no route or method is not counted.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("path_template") or "unknown"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
