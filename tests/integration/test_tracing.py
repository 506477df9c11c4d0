"""One execution run across two worker processes, the first killed mid-node, makes one trace: its spans, made by
the projector from the log, form one tree; the http node's request carries the node span's ``traceparent``; the
workers' JSON log lines name the execution, node, attempt and trace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from spane_core.commands import Start
from spane_core.ids import new_execution_id
from spane_core.observe import context
from spane_core.observe.metrics import Metrics
from spane_core.observe.otel import SpanSink
from spane_core.state import ExecutionStatus, NodeStatus
from spane_core.store.executions import Transition
from spane_projector import Projector
from spane_projector.observer import Observer

from tests.http_support import QuietHandler, serving

from .worker_support import engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
VISIBILITY_MS = 1000


@contextlib.contextmanager
def header_catcher() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server that answers 200 and keeps the headers of each request."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    with serving(Handler) as url:
        yield f"{url}/hook", seen


def worker_process(redis_url: str, database_url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPANE_REDIS_URL": redis_url,
        "SPANE_DATABASE_URL": database_url,
        "SPANE_TASK_VISIBILITY_TIMEOUT_MS": str(VISIBILITY_MS),
        "SPANE_PLUGINS": "trace_plugin",
        "SPANE_CONSUMER_NAME": name,
        "SPANE_LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "spane", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_an_execution_across_two_worker_processes_is_one_trace(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    with header_catcher() as (url, requests):
        async with engine(redis_url, task_visibility_timeout_ms=VISIBILITY_MS) as e:
            wf = await e.register("traced", [
                {"id": "start", "type": "transform", "outputs": ["slow", "call"]},
                {"id": "slow", "type": "nap", "config": {"ms": 1500}, "outputs": ["join"]},
                {"id": "call", "type": "http", "config": {"url": url}, "outputs": ["join"]},
                {"id": "join", "type": "transform"},
            ])  # fmt: skip
            eid = new_execution_id()
            start = Start(execution_id=eid, input={}, traceparent=context.start_context(eid))
            await e.store.apply(Transition(eid, [start], workflow=wf))

            first = worker_process(redis_url, database_url, "first", tmp_path / "first.log")
            second = None
            try:
                deadline = time.monotonic() + 30
                while (s := await e.store.load(eid)) is None or s.node("slow").status is not NodeStatus.RUNNING:  # type: ignore[arg-type]
                    assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
                    await asyncio.sleep(0.02)
                first.kill()  # mid-node: "slow" is running there
                first.wait()
                second = worker_process(redis_url, database_url, "second", tmp_path / "second.log")
                (state,) = await e.wait_finished([eid], within=30)
            finally:
                stop(first)
                if second is not None:
                    stop(second)
            assert state.status is ExecutionStatus.COMPLETED

            exporter = InMemorySpanExporter()
            observer = Observer(Metrics(), SpanSink("spane-projector", SimpleSpanProcessor(exporter)), e.workflows)
            projector = Projector(e.redis, database_url, consumer="p", observer=observer, block_ms=50)
            halt = asyncio.Event()
            running = asyncio.create_task(projector.run(halt))
            deadline = time.monotonic() + 20
            while not any(s.parent is None for s in exporter.get_finished_spans()):
                assert time.monotonic() < deadline and not running.done(), "the projector made no root span"
                await asyncio.sleep(0.05)
            halt.set()
            await running

    spans = exporter.get_finished_spans()
    trace_id = context.trace_id_of(eid)
    assert {s.context.trace_id for s in spans if s.context} == {trace_id}
    (root,) = [s for s in spans if s.parent is None]
    assert root.context is not None and root.context.span_id == context.root_span_id(eid)
    nodes = {str((s.attributes or {})["spane.node.id"]): s for s in spans if s.parent is not None}
    assert sorted(nodes) == ["call", "join", "slow", "start"] and len(spans) == 5  # one span per attempt
    for node_id, span in nodes.items():
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        assert span.context is not None and span.context.span_id == context.node_span_id(eid, node_id, 1)
        assert root.start_time is not None and root.end_time is not None
        assert root.start_time <= (span.start_time or 0) <= (span.end_time or 0) <= root.end_time
    # The killed worker's try and the second worker's are one attempt: its span runs from the first start to the
    # end of the second try.
    slow = nodes["slow"]
    assert (slow.attributes or {})["spane.node.type"] == "nap"
    assert (slow.end_time or 0) - (slow.start_time or 0) >= (VISIBILITY_MS + 1500) * 1_000_000
    # The http node sent the traceparent of its own span.
    assert [r.get("traceparent") for r in requests] == [context.node_traceparent(start.traceparent, eid, "call", 1)]
    # The workers logged JSON lines naming what they are about.
    lines = [json.loads(line) for p in ("first.log", "second.log") for line in (tmp_path / p).read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    napping = [line for line in lines if line["message"].startswith("napping")]
    assert len(napping) == 2  # once in each worker
    for line in napping:
        assert (line["executionId"], line["nodeId"], line["attempt"]) == (eid, "slow", 1)
        assert line["traceId"] == f"{trace_id:032x}"
