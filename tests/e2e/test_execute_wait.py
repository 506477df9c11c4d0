"""``POST /api/workflows/{id}/execute`` with ``waitMs``: the call answers with the finished execution (200) when it
ends in time, as a function call would, and as without ``waitMs`` (202) when it does not."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import spane.client as client_module
from spane.client import SpaneClient
from spane.embedded import RedisServer, free_port

from .conftest import System, create_database, start_spane, stop_process
from .support import post_workflow, unique, wait_final, wait_listed

pytestmark = pytest.mark.e2e


def flow(workflow_id: str, delay_ms: int, fail: bool = False) -> dict[str, Any]:
    last: dict[str, Any] = {"id": "shout", "type": "transform", "config": {"expression": "upper(name)"}}
    if fail:  # upper() of a number: the expression fails, for good
        last["config"] = {"expression": "upper(`1`)"}
    return {"id": workflow_id, "name": "Wait", "nodes": [
        {"id": "pause", "type": "delay", "config": {"ms": delay_ms}, "outputs": ["shout"]}, last,
    ]}  # fmt: skip


def test_a_quick_execution_answers_200_with_its_output(system: System, api: httpx.Client) -> None:
    wf = unique("wait-ok")
    post_workflow(api, flow(wf, 50))
    response = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "ada"}, "waitMs": 10_000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed" and body["output"] == "ADA"
    assert body["nodes"]["shout"]["status"] == "completed"
    # Asked again with the same key, the finished execution answers at once.
    key = unique("key")
    first = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "bo"}, "idempotencyKey": key})
    assert first.status_code == 202
    wait_final(api, first.json()["executionId"])
    again = api.post(f"/api/workflows/{wf}/execute", json={"idempotencyKey": key, "waitMs": 1})
    assert again.status_code == 200 and again.json()["executionId"] == first.json()["executionId"]
    assert again.json()["output"] == "BO"


def test_a_failed_execution_answers_200_with_its_error(system: System, api: httpx.Client) -> None:
    wf = unique("wait-fail")
    post_workflow(api, flow(wf, 10, fail=True))
    response = api.post(f"/api/workflows/{wf}/execute", json={"waitMs": 10_000})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed" and response.json()["error"]["type"]


def test_a_slower_execution_answers_202_after_the_wait_and_goes_on(system: System, api: httpx.Client) -> None:
    wf = unique("wait-slow")
    post_workflow(api, flow(wf, 1_500))
    response = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "cy"}, "waitMs": 300})
    # It answered once the wait was over, with the execution still running.
    assert response.status_code == 202 and response.json()["status"] == "running"
    assert wait_final(api, response.json()["executionId"])["output"] == "CY"


@pytest.mark.parametrize("wait", [0, -5, 300_001, "10", True, 1.5])
def test_a_bad_wait_is_a_422_and_starts_nothing(system: System, api: httpx.Client, wait: object) -> None:
    wf = unique("wait-bad")
    post_workflow(api, flow(wf, 10))
    response = api.post(f"/api/workflows/{wf}/execute", json={"waitMs": wait})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == "waitMs"
    assert api.get("/api/executions", params={"workflowId": wf}).json()["items"] == []


def test_the_client_s_run_returns_the_finished_execution_across_several_waits(
    system: System, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = unique("wait-client")
    post_workflow(api, flow(wf, 700))
    monkeypatch.setattr(client_module, "RUN_WAIT_S", 0.2)  # several calls: each answers 202 until the end
    with SpaneClient(system.url) as spane:
        execution = spane.run(wf, {"name": "dee"})
        assert execution.status == "completed" and execution.output == "DEE"
        with pytest.raises(TimeoutError):
            spane.run(wf, {"name": "eve"}, timeout=0.3)
    # One execution per run() call, however many calls it made.
    wait_listed(api, {"workflowId": wf}, 2)
    assert len(api.get("/api/executions", params={"workflowId": wf, "limit": 10}).json()["items"]) == 2


def hooked(workflow_id: str, delay_ms: int, wait_ms: object, fail: bool = False) -> dict[str, Any]:
    definition = flow(workflow_id, delay_ms, fail)
    definition["triggers"] = [{"type": "webhook", "config": {"path": f"{workflow_id}/in", "waitMs": wait_ms}}]
    return definition


def test_a_webhook_that_waits_answers_with_the_output_or_502_or_202(system: System, api: httpx.Client) -> None:
    quick, failing, slow = unique("hook-ok"), unique("hook-fail"), unique("hook-slow")
    post_workflow(api, hooked(quick, 10, 10_000))
    post_workflow(api, hooked(failing, 10, 10_000, fail=True))
    post_workflow(api, hooked(slow, 1_500, 200))
    done = api.post(f"/api/webhooks/{quick}/in", json={"name": "fay"})
    assert done.status_code == 200 and done.json() == "FAY"  # the output itself, as a function's result
    failed = api.post(f"/api/webhooks/{failing}/in", json={})
    assert failed.status_code == 502 and failed.headers["content-type"].startswith("application/problem+json")
    assert "failed" in failed.json()["detail"] and "upper" not in failed.text  # why is for the API token's holders
    later = api.post(f"/api/webhooks/{slow}/in", json={"name": "gus"})
    assert later.status_code == 202
    (execution_id,) = later.json()["executionIds"]
    assert wait_final(api, execution_id)["output"] == "GUS"


def test_a_webhook_wait_out_of_range_is_refused_at_registration(system: System, api: httpx.Client) -> None:
    response = api.post("/api/workflows", json=hooked(unique("hook-bad"), 10, 300_001))
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["triggers[0].config.waitMs"]


def _read_stream(url: str) -> int:
    with httpx.Client(timeout=60.0) as client, client.stream("GET", url) as response:
        return sum(1 for _ in response.iter_lines())


def test_a_held_call_answers_202_at_once_when_the_api_stops(postgres_server: str, servers_dir: Path) -> None:
    # A restart of the API while it held a call: the server's grace period ended, it cut the call with a 500 and
    # logged a traceback. Now the call answers 202 (the execution goes on; the same key asks again elsewhere), and
    # live event streams end (their clients resume with Last-Event-ID), so the server stops without cutting any.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = servers_dir / f"{unique('stopping')}-spane.log"
    with RedisServer(servers_dir / unique("stopping-redis"), persistent=False) as redis:
        env = {"SPANE_REDIS_URL": redis.url, "SPANE_DATABASE_URL": create_database(postgres_server),
               "SPANE_PORT": str(port)}  # fmt: skip
        proc = start_spane(["dev"], env, log, ready_url=f"{url}/ready")
        try:
            with httpx.Client(base_url=url, timeout=60.0) as api:
                wf = unique("held")
                post_workflow(api, {"id": wf, "nodes": [{"id": "w", "type": "wait", "config": {"signal": "go"}}]})
                with ThreadPoolExecutor(3) as pool:
                    streams = [pool.submit(_read_stream, f"{url}/api/events")]
                    held = pool.submit(api.post, f"/api/workflows/{wf}/execute", json={"waitMs": 60_000})
                    deadline = time.monotonic() + 20
                    while not (listed := api.get("/api/executions", params={"workflowId": wf}).json()["items"]):
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                    events = f"{url}/api/executions/{listed[0]['executionId']}/events"
                    streams.append(pool.submit(_read_stream, events))
                    time.sleep(0.5)  # the streams are open
                    proc.send_signal(signal.SIGTERM)
                    response = held.result(timeout=30)
                    assert all(stream.result(timeout=30) > 0 for stream in streams)
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "running"
            proc.wait(30)
        finally:
            stop_process(proc)
    assert "Exception in ASGI application" not in log.read_text()


def test_a_wait_for_an_execution_scheduled_after_it_answers_202_at_once(system: System, api: httpx.Client) -> None:
    wf = unique("wait-later")
    post_workflow(api, flow(wf, 10))
    run_at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    # Held for the whole minute, the call would outlast the client's 30 s timeout.
    response = api.post(f"/api/workflows/{wf}/execute", json={"runAt": run_at, "waitMs": 60_000})
    assert response.status_code == 202 and response.json()["status"] == "scheduled"
    api.post(f"/api/executions/{response.json()['executionId']}/cancel")
