"""The dead-letter queue over HTTP: entries list with the node's last input and error; a retry (with edited input)
revives the execution with every branch that stopped when it failed; a second retry is a 409; a deletion leaves the
execution failed; the queue's size and retries show in /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def node(node_id: str, type_: str = "transform", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **fields}


def wait_entries(api: httpx.Client, execution_id: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get("/api/dlq", params={"executionId": execution_id}).json()["items"]
        if len(items) == count:
            return items
        time.sleep(0.05)
    raise AssertionError(f"the queue holds {items} for {execution_id}, not {count} entries")


def metric(api: httpx.Client, name: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_metric(api: httpx.Client, name: str, check: Callable[[float], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check(value := metric(api, name)):
        assert time.monotonic() < deadline, f"{name} is {value}"
        time.sleep(0.2)


def diamond(api: httpx.Client) -> str:
    """start -> {bad, slow, delayed} -> join: ``bad`` dies while ``slow`` runs and ``delayed`` waits."""
    wf = unique("dlq-diamond")
    post_workflow(api, {"id": wf, "name": "dlq", "nodes": [
        node("start", outputs=["bad", "slow", "delayed"]),
        node("bad", "needs-ok", retryPolicy={"maxAttempts": 1}, outputs=["join"]),
        node("slow", "sleep", config={"ms": 1500}, outputs=["join"]),
        node("delayed", "delay", config={"durationSeconds": 1}, outputs=["join"]),
        node("join", inputs=["bad", "slow", "delayed"]),
    ]})  # fmt: skip
    return wf


def test_a_retry_with_edited_input_revives_every_branch_of_the_diamond(api: httpx.Client) -> None:
    wf = diamond(api)
    execution_id = execute(api, wf, {"ok": False})
    (entry,) = wait_entries(api, execution_id)
    assert entry["id"] == f"{execution_id}:bad:1"
    assert (entry["workflowId"], entry["nodeId"], entry["attempts"]) == (wf, "bad", 1)
    assert entry["input"] == {"ok": False} and "is not ok" in entry["error"]["message"]
    assert entry["failedAt"].endswith("Z")
    assert wait_final(api, execution_id)["status"] == "failed"
    # The slow sibling finishes and the delayed one falls due while the execution is failed.
    time.sleep(1.6)
    retries = metric(api, "spane_dlq_retries_total")

    response = api.post(f"/api/dlq/{entry['id']}/retry", json={"input": {"ok": True}})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running" and response.json()["attempt"] == 2
    body = wait_final(api, execution_id)
    assert body["status"] == "completed", body
    assert body["output"] == {"bad": {"fixed": True}, "slow": {"ok": False}, "delayed": {"ok": False}}
    assert wait_entries(api, execution_id, 0) == []
    assert metric(api, "spane_dlq_retries_total") == retries + 1

    again = api.post(f"/api/dlq/{entry['id']}/retry", json={})
    assert again.status_code == 409 and "retried already" in again.json()["detail"]


def test_a_retry_without_a_body_reruns_the_node_on_its_own_input(api: httpx.Client) -> None:
    wf = unique("dlq-flaky")
    post_workflow(api, {"id": wf, "name": "f", "nodes": [node("f", "flaky", config={"succeedOn": 2},
                                                               retryPolicy={"maxAttempts": 1})]})  # fmt: skip
    execution_id = execute(api, wf, {"k": 1})
    (entry,) = wait_entries(api, execution_id)
    assert api.post(f"/api/dlq/{entry['id']}/retry").status_code == 202
    body = wait_final(api, execution_id)
    assert body["status"] == "completed" and body["output"] == {"attempt": 2, "input": {"k": 1}}


def test_deleting_an_entry_leaves_the_execution_failed(api: httpx.Client) -> None:
    wf = unique("dlq-drop")
    post_workflow(api, {"id": wf, "name": "d", "nodes": [node("bad", "always-fails")]})
    execution_id = execute(api, wf, {})
    (entry,) = wait_entries(api, execution_id)
    assert any(e["id"] == entry["id"] for e in api.get("/api/dlq", params={"workflowId": wf}).json()["items"])
    wait_metric(api, "spane_dlq_entries", lambda value: value >= 1)
    assert api.delete(f"/api/dlq/{entry['id']}").status_code == 204
    assert wait_entries(api, execution_id, 0) == []
    assert wait_final(api, execution_id)["status"] == "failed"
    assert api.delete(f"/api/dlq/{entry['id']}").status_code == 404
    assert api.post(f"/api/dlq/{entry['id']}/retry").status_code == 404


def test_unknown_entries_are_404_and_the_listing_pages(api: httpx.Client) -> None:
    assert api.post("/api/dlq/nope/retry").status_code == 404
    assert api.post("/api/dlq/01JUNKNOWN:node:1/retry").status_code == 404
    assert api.delete("/api/dlq/01JUNKNOWN:node:1").status_code == 404
    assert api.get("/api/dlq", params={"limit": 0}).status_code == 400
    wf = unique("dlq-page")
    post_workflow(api, {"id": wf, "name": "p", "nodes": [node("bad", "always-fails")]})
    for _ in range(3):
        wait_entries(api, execute(api, wf, {}))
    first = api.get("/api/dlq", params={"workflowId": wf, "limit": 2}).json()
    second = api.get("/api/dlq", params={"workflowId": wf, "limit": 2, "cursor": first["nextCursor"]}).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["nextCursor"] is None
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
