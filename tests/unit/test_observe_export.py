"""Spans exported through OpenTelemetry, JSON log lines, and the metrics counted from folded events."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from spane_core.observe import context, logs
from spane_core.observe.metrics import Metrics
from spane_core.observe.otel import SpanSink, span_emitter_from_env, tracing_enabled
from spane_core.observe.otlp_json import JsonSpanSink
from spane_core.observe.spans import spans_for

from tests.unit.observe_support import diamond_with_retry


def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_enabled({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not tracing_enabled({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


def test_exported_spans_form_one_tree_with_node_attributes() -> None:
    exporter = InMemorySpanExporter()
    sink = SpanSink("spane-test", SimpleSpanProcessor(exporter))
    log = diamond_with_retry()
    assert sink.emit(spans_for(None, log), lambda r: {"a": "http"}.get(r.node_id or "", "transform")) == 6
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    assert root.name == "execution wf" and root.context is not None
    assert root.context.trace_id == context.trace_id_of("e1")
    assert root.start_time == log[0].at * 1_000_000 and root.end_time == log[-1].at * 1_000_000
    children = [s for s in spans if s.parent is not None]
    assert {s.parent.span_id for s in children if s.parent} == {root.context.span_id}
    retry = next(s for s in children if s.attributes and s.attributes["spane.node.attempt"] == 1
                 and s.attributes["spane.node.id"] == "a")  # fmt: skip
    assert retry.attributes is not None and retry.attributes["spane.node.type"] == "http"
    assert retry.status.status_code is StatusCode.ERROR and retry.attributes["error.type"] == "HttpStatusError"
    assert retry.context is not None and retry.context.span_id == context.node_span_id("e1", "a", 1)


def test_json_log_lines_name_the_execution_they_are_about() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ExecutionFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("spane.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def about_an_execution() -> None:  # in a context of its own, as the worker's task of one node try
        logs.bind("e9", "fetch", 2, context.start_context("e9"))
        logger.warning("node %s failed", "fetch")
        logger.info("about another one", extra={"executionId": "e7"})

    try:
        logger.warning("not about an execution")
        contextvars.copy_context().run(about_an_execution)
        logger.warning("still not about one")
    finally:
        logger.removeHandler(handler)
    first, second, third, fourth = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "executionId" not in first and first["message"] == "not about an execution"
    assert second["message"] == "node fetch failed" and second["level"] == "warning"
    assert (second["executionId"], second["nodeId"], second["attempt"]) == ("e9", "fetch", 2)
    assert second["traceId"] == f"{context.trace_id_of('e9'):032x}"
    assert third["executionId"] == "e7" and third["traceId"] == f"{context.trace_id_of('e7'):032x}"
    assert "executionId" not in fourth


def test_folded_events_count_started_and_finished_executions() -> None:
    metrics = Metrics()
    metrics.folded(diamond_with_retry())
    text = metrics.render().decode()
    assert 'spane_executions_started_total{workflow="wf"} 1.0' in text
    assert 'spane_executions_finished_total{status="completed",workflow="wf"} 1.0' in text
    metrics.node_ran("http", "failed", 0.02)
    metrics.node_ran("http", "failed", 0.03)
    text = metrics.render().decode()
    assert 'spane_node_runs_total{status="failed",type="http"} 2.0' in text
    assert 'spane_node_run_duration_seconds_count{status="failed",type="http"} 2.0' in text


def test_otlp_json_batches_reach_the_collector_as_one_tree() -> None:
    bodies: list[dict[str, Any]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert self.path == "/v1/traces" and self.headers["content-type"] == "application/json"
            bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}
        sink = span_emitter_from_env("spane-test", env)
        assert isinstance(sink, JsonSpanSink)
        assert sink.emit(spans_for(None, diamond_with_retry()), lambda r: "transform") == 6
        sink.shutdown()  # flushes
    finally:
        server.shutdown()
        server.server_close()
    spans = [s for b in bodies for rs in b["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    resource = bodies[0]["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "spane-test"}} in resource
    (root,) = [s for s in spans if "parentSpanId" not in s]
    assert (
        root["traceId"] == f"{context.trace_id_of('e1'):032x}"
        and root["spanId"] == f"{context.root_span_id('e1'):016x}"
    )
    assert len(spans) == 6 and all(s["parentSpanId"] == root["spanId"] for s in spans if s is not root)
    retry = next(s for s in spans if {"key": "spane.node.attempt", "value": {"intValue": "1"}} in s["attributes"]
                 and {"key": "spane.node.id", "value": {"stringValue": "a"}} in s["attributes"])  # fmt: skip
    assert retry["status"]["code"] == 2 and int(retry["endTimeUnixNano"]) > int(retry["startTimeUnixNano"])
    assert span_emitter_from_env("x", {}) is None
    assert isinstance(span_emitter_from_env("x", {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}), SpanSink)
