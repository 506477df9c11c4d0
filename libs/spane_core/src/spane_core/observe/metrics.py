"""Every Prometheus metric of SPANE, in one registry per process.

One ``Metrics`` is made per process and handed to each service it runs, so that ``spane dev`` shows every service's
metrics on the API's ``/metrics``, and ``SPANE_METRICS_PORT`` serves them from a service run on its own. Names
follow Prometheus conventions: counters end in ``_total`` (the client adds it), times are ``_seconds``, sizes
``_bytes``. Gauges of the shared state (tasks waiting, timers due, the DLQ, ...) are read from Redis and Postgres
by ``system.SystemGauges`` when they are scraped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from spane_core.events import (
    Envelope,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
)

log = logging.getLogger("spane.metrics")
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_FINISHED = {ExecutionCompleted: "completed", ExecutionFailed: "failed", ExecutionCancelled: "cancelled"}


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # From the log, as the projector folds it (each event once).
        self.executions_started = Counter(
            "spane_executions_started", "Executions started, by workflow.", ["workflow"], registry=r
        )
        self.executions_finished = Counter(
            "spane_executions_finished",
            "Executions that reached a final state, by workflow and status (completed, failed, cancelled).",
            ["workflow", "status"],
            registry=r,
        )
        # The worker: one per try of a node it ran.
        self.node_runs = Counter(
            "spane_node_runs", "Node tries run by workers, by node type and status.", ["type", "status"], registry=r
        )
        self.node_duration = Histogram(
            "spane_node_run_duration_seconds",
            "Time a node try took in its executor, by node type and status.",
            ["type", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.worker_tasks_in_flight = Gauge(
            "spane_worker_tasks_in_flight", "Node tries this process is running now.", registry=r
        )
        # The projector.
        self.projector_events = Counter("spane_projector_events", "Events folded into the read models.", registry=r)
        self.projector_batch_duration = Histogram(
            "spane_projector_batch_duration_seconds",
            "Time to write one batch of commits into Postgres.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.projector_poison = Counter(
            "spane_projector_poison_entries",
            "Commit-stream entries parked in a poison stream: they could not be decoded or folded.",
            registry=r,
        )
        self.history_pruned = Counter(
            "spane_history_pruned_executions", "Executions deleted for good past SPANE_HISTORY_RETENTION_S.", registry=r
        )
        self.payloads_collected = Counter(
            "spane_payloads_collected",
            "Stored payloads deleted with the last execution that referenced them.",
            registry=r,
        )
        self.projector_spans = Counter(
            "spane_trace_spans_exported", "Spans made from the log and handed to the exporter.", registry=r
        )
        # The scheduler.
        self.timers_fired = Counter("spane_timers_fired", "Due timers turned into commands.", registry=r)
        # Read from Redis and Postgres when scraped (system.SystemGauges).
        self.tasks_waiting = Gauge(
            "spane_tasks_waiting", "Tasks not yet delivered to a worker, by stream.", ["stream"], registry=r
        )
        self.tasks_pending = Gauge(
            "spane_tasks_pending", "Tasks delivered to a worker and not yet acknowledged, by stream.", ["stream"],
            registry=r,
        )  # fmt: skip
        self.tasks_oldest_pending_age = Gauge(
            "spane_tasks_oldest_pending_age_seconds",
            "Age of the oldest task not yet acknowledged, by stream (0 when none).",
            ["stream"],
            registry=r,
        )
        self.projector_lag_events = Gauge(
            "spane_projector_lag_events", "Commit entries not yet projected into the read models.", registry=r
        )
        self.projector_lag_seconds = Gauge(
            "spane_projector_lag_seconds",
            "Age of the oldest commit entry not yet projected (0 when caught up).",
            registry=r,
        )
        self.timers_due = Gauge("spane_timers_due", "Timers whose time has come and that have not fired.", registry=r)
        self.timers_scheduled = Gauge("spane_timers_scheduled", "Timers armed (due or not).", registry=r)
        self.dlq_entries = Gauge("spane_dlq_entries", "Dead letters not yet retried or deleted.", registry=r)
        self.payload_store_bytes = Gauge(
            "spane_payload_store_bytes", "Size on disk of the stored large values (table and indexes).", registry=r
        )
        self.payload_store_entries = Gauge(
            "spane_payload_store_entries", "Stored large values (Postgres's estimate).", registry=r
        )
        self.circuit_breakers = Gauge(
            "spane_circuit_breaker_state",
            "1 for the state each circuit breaker is in (closed, open, half_open), else 0.",
            ["name", "state"],
            registry=r,
        )
        self._node_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._lock = threading.Lock()

    def node_ran(self, node_type: str, status: str, seconds: float) -> None:
        key = (node_type, status)
        children = self._node_children.get(key)
        if children is None:
            with self._lock:
                children = (self.node_runs.labels(node_type, status), self.node_duration.labels(node_type, status))
                self._node_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def folded(self, run: Iterable[Envelope]) -> None:
        """Count what a run of events the projector folded (each event once) starts and finishes."""
        for envelope in run:
            event = envelope.event
            if isinstance(event, ExecutionStarted):
                self.executions_started.labels(envelope.workflow_id).inc()
            elif (status := _FINISHED.get(type(event))) is not None:
                self.executions_finished.labels(envelope.workflow_id, status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
