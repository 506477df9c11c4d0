"""What a process observes itself with, made once (``spane.runtime``) and handed to each service it runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import start_http_server

from spane_core.observe.metrics import Metrics
from spane_core.observe.otel import tracing_enabled

log = logging.getLogger("spane.metrics")


@dataclass
class Telemetry:
    metrics: Metrics = field(default_factory=Metrics)
    # OTEL_* asks for traces: new executions get a trace context, the projector exports spans made from the log,
    # and workers trace their http nodes' requests.
    tracing: bool = False

    @classmethod
    def from_env(cls) -> Telemetry:
        return cls(Metrics(), tracing_enabled())

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve the metrics on ``port`` (``SPANE_METRICS_PORT``), from a thread of the process."""
        start_http_server(port, addr=host, registry=self.metrics.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)
