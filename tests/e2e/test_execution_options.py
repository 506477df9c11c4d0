"""The execution options over HTTP, against the whole system: timeouts, priority, run-at, re-run, bulk operations
and CPU-bound nodes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.http_support import QuietHandler, serving

from .conftest import System
from .support import execute, post_workflow, unique, wait_final, wait_listed

pytestmark = pytest.mark.e2e


def node(node_id: str, type_: str = "transform", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **fields}


def history(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [f"{e['type']}:{e['nodeId']}" if "nodeId" in e else e["type"] for e in events]


def in_ms(ms: int) -> str:
    return (datetime.now(UTC) + timedelta(milliseconds=ms)).isoformat()


def field_errors(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["path"] for e in response.json()["errors"]]


def slow_workflow(api: httpx.Client, ms: int, **extra: Any) -> str:
    wf = unique("slow")
    post_workflow(api, {"id": wf, "name": "Slow", "nodes": [
        node("nap", "sleep", config={"ms": ms}, outputs=["after"]), node("after"),
    ], **extra})  # fmt: skip
    return wf


# -- timeouts --------------------------------------------------------------------------------------------------------


def test_a_timeout_fails_the_execution_while_a_node_runs_and_its_late_result_is_discarded(api: httpx.Client) -> None:
    wf = slow_workflow(api, 1500)
    execution_id = execute(api, wf, {"n": 1}, timeoutMs=300)
    body = wait_final(api, execution_id)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "ExecutionTimeout"
    assert body["nodes"]["nap"]["status"] == "cancelled"
    time.sleep(1.6)  # the node's own sleep ends: its result comes back late
    events = history(api, execution_id)
    assert "node.completed:nap" not in types(events) and "node.queued:after" not in types(events)
    assert events[0]["timeoutMs"] == 300 and "deadline" in events[0]
    assert wait_final(api, execution_id)["status"] == "failed"


def test_the_definition_timeout_applies_and_the_call_can_set_or_move_it(api: httpx.Client) -> None:
    wf = slow_workflow(api, 1200, timeoutMs=200)
    assert wait_final(api, execute(api, wf))["error"]["type"] == "ExecutionTimeout"
    # The call's timeout wins over the definition's.
    assert wait_final(api, execute(api, wf, timeoutMs=20_000))["status"] == "completed"
    # Set on a running execution that had a long one: it fails by the new deadline.
    execution_id = execute(api, wf, timeoutMs=60_000)
    response = api.post(f"/api/executions/{execution_id}/timeout", json={"timeoutMs": 100})
    assert response.status_code == 202, response.text
    body = wait_final(api, execution_id)
    assert body["error"]["type"] == "ExecutionTimeout"
    assert "execution.deadline_set" in types(history(api, execution_id))
    finished = api.post(f"/api/executions/{execution_id}/timeout", json={"timeoutMs": 100})
    assert finished.status_code == 409
    assert field_errors(api.post(f"/api/executions/{execution_id}/timeout", json={"timeoutMs": 0})) == ["timeoutMs"]
    assert field_errors(api.post(f"/api/executions/{execution_id}/timeout", json={"timeoutMs": "x"})) == ["timeoutMs"]
    assert api.post("/api/executions/nope/timeout", json={"timeoutMs": 5}).status_code == 404


# -- priority and run-at ---------------------------------------------------------------------------------------------


def test_priority_is_recorded_and_bad_options_are_422_naming_the_field(api: httpx.Client) -> None:
    wf = unique("prio")
    post_workflow(api, {"id": wf, "name": "Prio", "nodes": [node("a", outputs=["b"]), node("b")]})
    execution_id = execute(api, wf, {"x": 1}, priority=9)
    assert wait_final(api, execution_id)["status"] == "completed"
    assert history(api, execution_id)[0]["priority"] == 9
    url = f"/api/workflows/{wf}/execute"
    assert field_errors(api.post(url, json={"priority": 11})) == ["priority"]
    assert field_errors(api.post(url, json={"priority": "high"})) == ["priority"]
    assert field_errors(api.post(url, json={"timeoutMs": -5})) == ["timeoutMs"]
    assert field_errors(api.post(url, json={"runAt": "2020-01-01T00:00:00Z"})) == ["runAt"]
    assert field_errors(api.post(url, json={"runAt": "2999-01-01T00:00:00"})) == ["runAt"]
    assert field_errors(api.post(url, json={"runAt": 12})) == ["runAt"]


def test_a_scheduled_execution_is_listed_as_scheduled_and_starts_at_its_time(api: httpx.Client) -> None:
    wf = unique("later")
    post_workflow(api, {"id": wf, "name": "Later", "nodes": [node("a")]})
    run_at = in_ms(1500)
    response = api.post(f"/api/workflows/{wf}/execute", json={"input": {"k": 1}, "runAt": run_at})
    assert response.status_code == 202 and response.json()["status"] == "scheduled"
    execution_id = response.json()["executionId"]
    listed = wait_listed(api, {"workflowId": wf, "status": "scheduled"}, 1)
    assert listed["items"][0]["executionId"] == execution_id
    body = wait_final(api, execution_id)
    assert body["status"] == "completed" and body["output"] == {"k": 1}
    assert body["startedAt"] >= run_at[:23]
    assert types(history(api, execution_id))[:3] == ["execution.started", "execution.due", "node.queued:a"]


def test_a_cancelled_scheduled_execution_never_starts(api: httpx.Client) -> None:
    wf = unique("never")
    post_workflow(api, {"id": wf, "name": "Never", "nodes": [node("a")]})
    execution_id = execute(api, wf, runAt=in_ms(800))
    response = api.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    time.sleep(1.2)
    assert wait_final(api, execution_id)["status"] == "cancelled"
    assert "execution.due" not in types(history(api, execution_id))
    assert "node.queued:a" not in types(history(api, execution_id))


# -- re-run ----------------------------------------------------------------------------------------------------------


class Endpoints(QuietHandler):
    hits: Counter[str] = Counter()
    failing: set[str] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Endpoints.hits[self.path] += 1
        status = 400 if self.path in Endpoints.failing else 200
        body = b'{"path": "%s"}' % self.path.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def endpoints() -> Iterator[str]:
    with serving(Endpoints) as url:
        yield url


def test_a_rerun_from_the_failed_node_reuses_earlier_outputs_and_calls_the_failing_endpoint_only(
    api: httpx.Client, endpoints: str
) -> None:
    wf = unique("rerun")
    paths = {name: f"/{wf}/{name}" for name in ("a", "b", "c")}
    post_workflow(api, {"id": wf, "name": "Re-run", "nodes": [
        node("a", "http", config={"url": endpoints + paths["a"], "method": "POST"}, outputs=["b"]),
        node("b", "http", config={"url": endpoints + paths["b"], "method": "POST"}, outputs=["c"]),
        node("c", "http", config={"url": endpoints + paths["c"], "method": "POST"}),
    ]})  # fmt: skip
    Endpoints.failing.add(paths["c"])
    failed = execute(api, wf, {"order": 1})
    assert wait_final(api, failed)["status"] == "failed"
    Endpoints.failing.discard(paths["c"])  # the endpoint is fixed
    response = api.post(f"/api/executions/{failed}/rerun", json={"fromNode": "c"})
    assert response.status_code == 202, response.text
    assert response.json()["rerunOf"] == failed
    rerun = response.json()["executionId"]
    body = wait_final(api, rerun)
    assert body["status"] == "completed" and body["output"]["body"] == {"path": paths["c"]}
    assert {p: Endpoints.hits[p] for p in paths.values()} == {paths["a"]: 1, paths["b"]: 1, paths["c"]: 2}
    events = history(api, rerun)
    assert events[0]["rerunOf"] == failed and events[0]["fromNode"] == "c"
    reused = [e["nodeId"] for e in events if e["type"] == "node.completed" and e.get("reusedFrom") == failed]
    assert reused == ["a", "b"]
    assert body["nodes"]["b"]["output"]["body"] == {"path": paths["b"]}
    # Without fromNode everything runs again; an unknown node is a 422 naming fromNode.
    assert field_errors(api.post(f"/api/executions/{failed}/rerun", json={"fromNode": "zz"})) == ["fromNode"]
    whole = api.post(f"/api/executions/{failed}/rerun", json={"input": {"order": 2}})
    assert wait_final(api, whole.json()["executionId"])["status"] == "completed"
    assert Endpoints.hits[paths["a"]] == 2
    assert api.post("/api/executions/nope/rerun", json={}).status_code == 404


def listed(api: httpx.Client, params: dict[str, Any]) -> set[str]:
    """Every execution id GET /api/executions lists with ``params``, page after page."""
    ids: set[str] = set()
    cursor = None
    while True:
        page = api.get("/api/executions", params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        ids |= {item["executionId"] for item in page.json()["items"]}
        cursor = page.json()["nextCursor"]
        if not cursor:
            return ids


def wait_counted(api: httpx.Client, params: dict[str, Any], count: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (n := len(listed(api, params))) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return n


# -- bulk ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_bulk_start_of_1000_returns_1000_distinct_ids_in_order_and_all_complete(api: httpx.Client) -> None:
    wf = unique("bulk")
    post_workflow(api, {"id": wf, "name": "Bulk", "nodes": [node("a")]})
    inputs = [{"i": i} for i in range(1000)]
    response = api.post(f"/api/workflows/{wf}/execute-many", json={"inputs": inputs, "idempotencyKeyPrefix": "b1"})
    assert response.status_code == 202, response.text
    ids = response.json()["executionIds"]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    again = api.post(f"/api/workflows/{wf}/execute-many", json={"inputs": inputs, "idempotencyKeyPrefix": "b1"})
    assert again.json()["executionIds"] == ids  # the same keys: the same executions
    assert wait_counted(api, {"workflowId": wf, "status": "completed"}, 1000) == 1000
    assert wait_final(api, ids[777])["output"] == {"i": 777}
    url = f"/api/workflows/{wf}/execute-many"
    assert field_errors(api.post(url, json={"inputs": [None] * 1001})) == ["inputs"]
    assert field_errors(api.post(url, json={"inputs": "x"})) == ["inputs"]
    assert field_errors(api.post(url, json={"inputs": [1], "priority": 0})) == ["priority"]


def test_bulk_commands_accept_what_they_can_and_say_why_they_skip_the_rest(api: httpx.Client) -> None:
    wf = unique("bulkcmd")
    post_workflow(api, {"id": wf, "name": "Bulk commands", "nodes": [node("a")]})
    later = [execute(api, wf, runAt=in_ms(60_000)) for _ in range(3)]
    done = execute(api, wf)
    wait_final(api, done)
    paused = api.post("/api/executions/pause", json={"executionIds": later})
    assert paused.status_code == 202
    assert paused.json()["accepted"] == 0 and {s["executionId"] for s in paused.json()["skipped"]} == set(later)
    response = api.post("/api/executions/cancel", json={"executionIds": [later[0], done, "nope"]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert {s["executionId"] for s in body["skipped"]} == {done, "nope"}
    assert all(s["reason"] for s in body["skipped"])
    deadline = time.monotonic() + 30
    while listed(api, {"workflowId": wf, "status": "scheduled"}) != set(later[1:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    selected = api.post("/api/executions/cancel", json={"workflowId": wf, "status": "scheduled"})
    assert selected.json() == {"accepted": 2, "skipped": []}
    assert all(wait_final(api, eid)["status"] == "cancelled" for eid in later)
    assert field_errors(api.post("/api/executions/resume", json={"workflowId": wf, "status": "bogus"})) == ["status"]
    assert field_errors(api.post("/api/executions/resume", json={"executionIds": "x"})) == ["executionIds"]


# -- CPU-bound nodes -------------------------------------------------------------------------------------------------


def test_a_cpu_bound_node_leaves_the_worker_free_for_other_nodes(api: httpx.Client, system: System) -> None:
    heavy, light = unique("heavy"), unique("light")
    post_workflow(api, {"id": heavy, "name": "Heavy", "nodes": [node("burn", "burn", config={"seconds": 1.5})]})
    post_workflow(api, {"id": light, "name": "Light", "nodes": [
        node(f"n{i}", "sleep", config={"ms": 20}, outputs=[f"n{i + 1}"]) for i in range(5)
    ] + [node("n5")]})  # fmt: skip
    burning = execute(api, heavy)
    time.sleep(0.3)  # the burn has started in the pool
    quick = execute(api, light)
    quick_body = wait_final(api, quick)
    heavy_body = wait_final(api, burning)
    assert quick_body["status"] == heavy_body["status"] == "completed"
    # Six nodes one after another ran and finished while the CPU-bound node was still burning.
    assert quick_body["finishedAt"] < heavy_body["nodes"]["burn"]["finishedAt"]


def test_a_node_that_blocks_the_loop_is_logged_by_name_and_the_lag_is_a_metric(
    api: httpx.Client, system: System
) -> None:
    wf = unique("hog")
    post_workflow(api, {"id": wf, "name": "Hog", "nodes": [node("hogger", "hog", config={"ms": 600})]})
    execution_id = execute(api, wf)
    assert wait_final(api, execution_id)["status"] == "completed"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = system.log.read_text()
        metrics = api.get("/metrics").text
        if f"node hogger of execution {execution_id}" in log and "spane_worker_event_loop_lag_seconds{" in metrics:
            break
        time.sleep(0.5)
    assert f"hog (node hogger of execution {execution_id})" in system.log.read_text()
    assert "spane_worker_event_loop_lag_seconds{" in api.get("/metrics").text
