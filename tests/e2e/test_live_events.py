"""Live events over SSE through the real system: snapshot then events, resume, and two API processes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from itertools import islice
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from spane_core.keys import PROJECTOR_GROUP, PartitionKeys
from spane_core.settings import Settings
from spane_core.store.connection import as_text, open_redis
from spane_projector.trim import trim_consumed

from spane.embedded import free_port

from .conftest import System, start_spane, stop_process
from .sse import Message, messages, read_all
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e
T = TypeVar("T")


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


def test_the_all_events_stream_filters_by_workflow_and_resumes(
    system: System, api: httpx.Client, second_api: httpx.Client
) -> None:
    wf, other = unique("sse-all"), unique("sse-other")
    post_workflow(api, slow_chain(wf, delay_ms=1))
    post_workflow(api, slow_chain(other, delay_ms=1))
    listener, got = listen(second_api, {"workflowId": wf}, lambda got: got[-1].event == "execution.completed")
    execute(api, other)
    execution_id = execute(api, wf)
    listener.join(30)
    assert not listener.is_alive()
    assert {m.data["workflowId"] for m in got} == {wf}
    assert [m.data for m in got] == history(api, execution_id)
    # The projector has consumed these commits and trimmed its stream as it does (keeping the resume window).
    wait_acknowledged(system, str(got[-1].id))
    trim(system, int(str(got[0].id).split("-")[0]), Settings().events_resume_window_s * 1000)
    # Resume after the third event: the rest of the stream, from the streams Redis still holds, and no gap.
    expected = [(m.id, m.event, m.data) for m in got[3:]]
    listener, resumed = listen(
        second_api, {"workflowId": wf}, lambda got: len(got) == len(expected), {"Last-Event-ID": str(got[2].id)}
    )
    listener.join(30)
    assert [(m.id, m.event, m.data) for m in resumed] == expected


def test_a_resume_past_the_window_gets_a_gap_then_the_held_and_live_events(system: System, api: httpx.Client) -> None:
    wf = unique("sse-gap")
    post_workflow(api, slow_chain(wf, delay_ms=1))
    listener, got = listen(api, {"workflowId": wf}, lambda got: got[-1].event == "execution.completed")
    first = execute(api, wf)
    listener.join(30)
    assert not listener.is_alive()
    resume_from = str(got[0].id)
    partition, *_ = position(resume_from)
    wait_acknowledged(system, str(got[-1].id))
    # Once the window has passed, the projector trims as with a window of 0: right behind its group.
    assert trim(system, partition, 0) > 0

    # The replay goes partition by partition, reading each to its end: the second execution's partition may come
    # before the gapped one and hold the whole second run, so the stream is read until both have come.
    def done(got: list[Message]) -> bool:
        return any(m.event == "gap" for m in got) and any(
            m.event == "execution.completed" and m.data["executionId"] != first for m in got
        )

    listener, resumed = listen(api, {"workflowId": wf}, done, headers={"Last-Event-ID": resume_from})
    second = [execute(api, wf)]
    listener.join(30)
    assert not listener.is_alive(), f"no gap, or no end of the second execution, in {resumed}"
    # One gap only (the other partitions hold all since then), before the partition's events.
    (gap,) = [m for m in resumed if m.event == "gap"]
    rest = [m for m in resumed if m is not gap]
    assert gap.id is None  # no id: a reconnect before the next event asks the same again
    assert gap.data["type"] == "gap" and gap.data["partition"] == partition
    assert gap.data["lastEventId"] == resume_from
    oldest = gap.data["oldestEventId"]
    assert oldest is None or (position(oldest)[0] == partition and position(oldest) > position(resume_from))
    assert "GET /api/executions" in gap.data["message"]
    assert all(resumed.index(gap) < i for i, m in enumerate(resumed) if m.id and position(m.id)[0] == partition)
    # Then the first execution's newest events that the stream still holds, and the second execution's (its
    # partition may come first), each once and in order.
    held = [m.data for m in rest if m.data["executionId"] == first]
    assert held == [m.data for m in got[len(got) - len(held) :]] and len(held) < len(got) - 1
    assert [m.data for m in rest if m.data["executionId"] == second[0]] == history(api, second[0])


def listen(
    client: httpx.Client,
    params: dict[str, str],
    done: Callable[[list[Message]], bool],
    headers: dict[str, str] | None = None,
) -> tuple[threading.Thread, list[Message]]:
    """Follow ``/api/events`` in a thread until ``done(received)``; returns once the stream listens."""
    got: list[Message] = []
    ready = threading.Event()

    def run() -> None:
        with client.stream("GET", "/api/events", params=params, headers=headers) as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"  # sent once the stream listens
            ready.set()
            for message in messages(lines):
                got.append(message)
                if done(got):
                    return

    listener = threading.Thread(target=run, daemon=True)  # a stream that never ends must not hold the run up
    listener.start()
    assert ready.wait(10)
    return listener, got


def position(event_id: str) -> tuple[int, int, int, int]:
    """An all-events ``id:`` (``<partition>-<ms>-<n>-<index>``, then ``~`` and the other partitions' when there
    are several) as numbers: the event's own position."""
    p, ms, n, i = (int(x) for x in event_id.split("~")[0].split("-"))
    return p, ms, n, i


def on_redis(system: System, work: Callable[[Redis], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = open_redis(Settings(redis_url=system.redis_url))
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def wait_acknowledged(system: System, event_id: str, within: float = 20.0) -> None:
    """Until the projector has acknowledged the commit of the event ``event_id``."""
    p, ms, n, _ = position(event_id)
    stream = PartitionKeys(p).events

    async def acknowledged(redis: Redis) -> bool:
        group = next(g for g in await redis.xinfo_groups(stream) if as_text(g["name"]) == PROJECTOR_GROUP)
        pending = await redis.xpending(stream, PROJECTOR_GROUP)
        delivered = as_text(group["last-delivered-id"]).split("-")
        return (int(delivered[0]), int(delivered[1])) >= (ms, n) and (
            not pending["pending"] or tuple(int(x) for x in as_text(pending["min"]).split("-")) > (ms, n)
        )

    deadline = time.monotonic() + within
    while not on_redis(system, acknowledged):
        assert time.monotonic() < deadline, f"the projector did not acknowledge {event_id} in {within} s"
        time.sleep(0.05)


def trim(system: System, partition: int, window_ms: int) -> int:
    """Trim a partition's commit stream as the projector does; how many entries went."""
    keys = PartitionKeys(partition)
    return on_redis(system, lambda redis: trim_consumed(redis, keys.events, keys.events_trimmed, window_ms))


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
