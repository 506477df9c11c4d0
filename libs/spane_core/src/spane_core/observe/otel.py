"""OpenTelemetry, configured by the standard ``OTEL_*`` variables; off unless they ask for traces.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and ``OTEL_SDK_DISABLED`` is not
``true``. OTLP is sent over HTTP/protobuf. Spans of executions are not recorded as code runs: ``SpanSink`` exports
the ``SpanRecord``s that ``spans`` derives from the log, under the ids of ``context``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from spane_core.observe.otlp_json import JsonSpanSink
from spane_core.observe.spans import SpanRecord

log = logging.getLogger("spane.tracing")
SCOPE = InstrumentationScope("spane")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def exporter_from_env(env: Mapping[str, str] | None = None) -> SpanExporter | None:
    """The span exporter the environment asks for; None while tracing is off."""
    env = os.environ if env is None else env
    if not tracing_enabled(env):
        return None
    names = [n.strip() for n in (env.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",") if n.strip()]
    if "console" in names:
        return ConsoleSpanExporter()
    if "otlp" not in names:
        log.warning("OTEL_TRACES_EXPORTER=%s: only otlp and console are built in; using otlp", ",".join(names))
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    if protocol == "grpc":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: SPANE sends OTLP over HTTP (the port is usually 4318)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def resource(service: str) -> Resource:
    """``service.name`` from ``OTEL_SERVICE_NAME`` when set, else ``service``; ``OTEL_RESOURCE_ATTRIBUTES`` too."""
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service})


def tracer_provider(service: str, exporter: SpanExporter) -> TracerProvider:
    """A provider of this process's own spans (the http node's client spans), not installed globally."""
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class SpanEmitter(Protocol):
    def emit(self, records: Iterable[SpanRecord], node_type: Callable[[SpanRecord], str | None]) -> int: ...

    def shutdown(self) -> None: ...


def span_emitter_from_env(service: str, env: Mapping[str, str] | None = None) -> SpanEmitter | None:
    """Where the spans made from the log go: OTLP/JSON (SPANE's default protocol, the cheapest by far), the SDK's
    OTLP/protobuf exporter (``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``), or the console. None: tracing is off."""
    env = os.environ if env is None else env
    if not tracing_enabled(env):
        return None
    exporters = (env.get("OTEL_TRACES_EXPORTER") or "otlp").lower()
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/json"
    if "console" in exporters or protocol != "http/json":
        return SpanSink.from_env(service, env)
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").rstrip("/") + "/v1/traces"
    )
    headers = dict(
        item.split("=", 1) for item in (env.get("OTEL_EXPORTER_OTLP_HEADERS") or "").split(",") if "=" in item
    )
    return JsonSpanSink(endpoint, dict(resource(service).attributes), headers)


class SpanSink:
    """Exports ``SpanRecord``s as OpenTelemetry spans, batched in the background by ``processor``."""

    def __init__(self, service: str, processor: SpanProcessor) -> None:
        self.resource = resource(service)
        self.processor = processor

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> SpanSink | None:
        exporter = exporter_from_env(env)
        return None if exporter is None else cls(service, BatchSpanProcessor(exporter))

    def emit(self, records: Iterable[SpanRecord], node_type: Callable[[SpanRecord], str | None]) -> int:
        n = 0
        for record in records:
            if record.end is None:
                continue
            self.processor.on_end(self._span(record, node_type(record) if record.kind == "node" else None))
            n += 1
        return n

    def shutdown(self) -> None:
        self.processor.shutdown()

    def _span(self, r: SpanRecord, node_type: str | None) -> ReadableSpan:
        attributes = r.span_attributes(node_type)
        if r.is_error:
            status = Status(StatusCode.ERROR, r.error.message if r.error else r.status)
        else:
            status = Status(StatusCode.OK)
        parent = None
        if r.parent_id is not None:
            parent = SpanContext(r.trace_id, r.parent_id, is_remote=r.kind == "execution", trace_flags=_SAMPLED)
        assert r.end is not None
        return ReadableSpan(
            name=r.name,
            context=SpanContext(r.trace_id, r.span_id, is_remote=False, trace_flags=_SAMPLED),
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            status=status,
            start_time=r.start * 1_000_000,
            end_time=r.end * 1_000_000,
            instrumentation_scope=SCOPE,
        )


def remote_span(trace_id: int, span_id: int) -> Span:
    """A span made elsewhere (a node attempt's, emitted from the log), to parent what runs under it here."""
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED))
