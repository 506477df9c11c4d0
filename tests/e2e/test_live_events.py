"""Live events over SSE through the real system: snapshot then events, resume, and two API processes."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import httpx
import pytest

from spane.embedded import free_port

from .conftest import System, start_spane, stop_process
from .sse import Message, messages, read_all
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def slow_chain(workflow_id: str, delay_ms: int = 400) -> dict[str, Any]:
    """a -> wait (a delay) -> b: slow enough to connect while it runs."""
    return {"id": workflow_id, "name": "Slow chain", "nodes": [
        {"id": "a", "type": "transform", "outputs": ["wait"]},
        {"id": "wait", "type": "delay", "config": {"ms": delay_ms}, "outputs": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"done": True}}},
    ]}  # fmt: skip


def history(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    return events


def assert_is_the_log(api: httpx.Client, execution_id: str, events: list[Message]) -> None:
    """``events`` are the execution's log exactly: every event once, in order, ``id`` = ``seq``."""
    log = history(api, execution_id)
    assert [(m.event, int(m.id or 0)) for m in events] == [(e["type"], e["seq"]) for e in log]
    assert [m.data for m in events] == log


@pytest.fixture(scope="module")
def second_api(system: System) -> Iterator[httpx.Client]:
    """A second `spane api` process over the same Redis and Postgres, as behind a load balancer."""
    port = free_port()
    env = {**system.env, "SPANE_REDIS_URL": system.redis_url, "SPANE_DATABASE_URL": system.database_url}
    env["SPANE_PORT"] = str(port)
    proc = start_spane(
        ["api"], env, system.log.with_name("e2e-second-api.log"), ready_url=f"http://127.0.0.1:{port}/ready"
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            yield client
    finally:
        stop_process(proc)


def test_the_stream_sends_the_snapshot_then_each_event_and_ends(api: httpx.Client) -> None:
    wf = unique("sse")
    post_workflow(api, slow_chain(wf))
    execution_id = execute(api, wf, {"n": 1})
    received = read_all(api, f"/api/executions/{execution_id}/events")
    first, rest = received[0], received[1:]
    assert first.event == "execution.state" and first.data["type"] == "execution.state"
    assert first.data["executionId"] == execution_id and first.data["status"] == "running"
    assert first.id == str(first.data["seq"])
    assert rest[-1].event == "execution.completed"
    log = history(api, execution_id)
    # After the snapshot at seq n, exactly the log's events after n, in order.
    assert_is_the_log(api, execution_id, [*_snapshot_prefix(log, int(first.id)), *rest])


def _snapshot_prefix(log: list[dict[str, Any]], seq: int) -> list[Message]:
    return [Message(str(e["seq"]), e["type"], e) for e in log if e["seq"] <= seq]


def test_a_finished_execution_streams_its_snapshot_only(api: httpx.Client) -> None:
    wf = unique("sse-done")
    post_workflow(api, slow_chain(wf, delay_ms=1))
    execution_id = execute(api, wf)
    wait_final(api, execution_id)
    (only,) = read_all(api, f"/api/executions/{execution_id}/events")
    assert only.event == "execution.state" and only.data["status"] == "completed"
    assert only.data["output"] == {"done": True}


def test_a_reconnect_with_last_event_id_resumes_with_nothing_lost_or_repeated(api: httpx.Client) -> None:
    wf = unique("sse-resume")
    post_workflow(api, slow_chain(wf, delay_ms=600))
    execution_id = execute(api, wf)
    url = f"/api/executions/{execution_id}/events"
    with api.stream("GET", url) as response:
        snapshot, first_event = islice(messages(response), 2)  # then the connection is closed
    assert snapshot.event == "execution.state"
    rest = read_all(api, url, headers={"Last-Event-ID": str(first_event.id)})
    assert rest[-1].event == "execution.completed"
    log = history(api, execution_id)
    assert_is_the_log(api, execution_id, [*_snapshot_prefix(log, int(snapshot.id or 0)), first_event, *rest])
    # From the very beginning, too: Last-Event-ID 0 replays the whole log.
    assert_is_the_log(api, execution_id, read_all(api, url, headers={"Last-Event-ID": "0"}))
    # After the final event nothing will follow: 204, which tells an EventSource to stop reconnecting.
    assert api.get(url, headers={"Last-Event-ID": str(rest[-1].id)}).status_code == 204


def test_each_api_process_streams_executions_that_the_other_started(
    api: httpx.Client, second_api: httpx.Client
) -> None:
    wf = unique("sse-two")
    post_workflow(api, slow_chain(wf))
    for starter, watcher in ((api, second_api), (second_api, api)):
        execution_id = execute(starter, wf)
        received = read_all(watcher, f"/api/executions/{execution_id}/events")
        assert received[-1].event == "execution.completed", received
        log = history(api, execution_id)
        assert_is_the_log(api, execution_id, [*_snapshot_prefix(log, int(received[0].id or 0)), *received[1:]])


def test_the_all_events_stream_filters_by_workflow_and_resumes(api: httpx.Client, second_api: httpx.Client) -> None:
    wf, other = unique("sse-all"), unique("sse-other")
    post_workflow(api, slow_chain(wf, delay_ms=1))
    post_workflow(api, slow_chain(other, delay_ms=1))
    got: list[Message] = []
    ready = threading.Event()

    def listen() -> None:
        with second_api.stream("GET", "/api/events", params={"workflowId": wf}) as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"  # sent once the stream listens
            ready.set()
            for message in messages(lines):
                got.append(message)
                if message.event == "execution.completed":
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(10)
    execute(api, other)
    execution_id = execute(api, wf)
    listener.join(30)
    assert not listener.is_alive()
    assert {m.data["workflowId"] for m in got} == {wf}
    assert [m.data for m in got] == history(api, execution_id)
    # Resume after the third event: the rest of the stream, from the streams Redis still holds.
    with second_api.stream("GET", "/api/events", params={"workflowId": wf},
                           headers={"Last-Event-ID": str(got[2].id)}) as response:  # fmt: skip
        resumed = list(islice(messages(response), len(got) - 3))
    assert [m.data for m in resumed] == [m.data for m in got[3:]]


def test_closed_streams_are_released(api: httpx.Client, second_api: httpx.Client) -> None:
    """Every stream of the tests above was closed (ended by itself or by its client): none is left open."""
    wf = unique("sse-release")
    post_workflow(api, slow_chain(wf, delay_ms=60_000))
    execution_id = execute(api, wf)
    with api.stream("GET", f"/api/executions/{execution_id}/events") as response:
        stream = messages(response)  # kept: a dropped line iterator closes the response
        next(stream)  # the snapshot: the stream is open, waiting for the delay
        assert open_streams(api) == 1
    deadline = time.monotonic() + 20  # a closed connection is noticed at once, or at the latest at a heartbeat
    while open_streams(api) or open_streams(second_api):
        assert time.monotonic() < deadline, "streams stayed open after their clients left"
        time.sleep(0.1)
    api.post(f"/api/executions/{execution_id}/cancel")


def open_streams(client: httpx.Client) -> int:
    text = client.get("/metrics").text
    (line,) = [line for line in text.splitlines() if line.startswith("spane_sse_streams ")]
    return int(float(line.split()[1]))


def test_an_api_process_with_open_streams_still_stops(system: System, api: httpx.Client) -> None:
    port = free_port()
    env = {**system.env, "SPANE_REDIS_URL": system.redis_url, "SPANE_DATABASE_URL": system.database_url}
    env["SPANE_PORT"] = str(port)
    log = system.log.with_name("e2e-stopped-api.log")
    proc = start_spane(["api"], env, log, ready_url=f"http://127.0.0.1:{port}/ready")
    wf = unique("sse-stop")
    post_workflow(api, slow_chain(wf, delay_ms=60_000))
    execution_id = execute(api, wf)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
        with client, client.stream("GET", f"/api/executions/{execution_id}/events") as response:
            stream = messages(response)
            next(stream)  # open, and waiting for the delay
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)  # the process stops (its open streams are cut after a grace period)
            with contextlib.suppress(httpx.HTTPError):
                list(stream)
    finally:
        stop_process(proc)
        api.post(f"/api/executions/{execution_id}/cancel")
    assert proc.returncode is not None
