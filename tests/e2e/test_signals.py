"""``wait`` nodes over the HTTP API: an execution holds at the node until its signal comes, then goes on with the
signal's data; a signal nobody waits for is a 409, and no signal before the timeout dead-letters the node."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from .conftest import System
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def approval_flow(workflow_id: str, **wait: Any) -> dict[str, Any]:
    return {"id": workflow_id, "name": "Approval", "nodes": [
        {"id": "ask", "type": "transform", "config": {"set": {"asked": True}}, "outputs": ["approve"]},
        {"id": "approve", "type": "wait", "config": {"signal": "approval"}, "outputs": ["ship"], **wait},
        {"id": "ship", "type": "transform", "config": {"expression": "{shipped: approved, by: by}"}},
    ]}  # fmt: skip


def wait_node_status(api: httpx.Client, execution_id: str, node_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/api/executions/{execution_id}").json()
        if body.get("nodes", {}).get(node_id, {}).get("status") == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"node {node_id} of {execution_id} was not {status} in 20 s")


def test_an_execution_waits_for_its_signal_then_goes_on_with_its_data(system: System, api: httpx.Client) -> None:
    wf = unique("signal")
    post_workflow(api, approval_flow(wf))
    execution_id = execute(api, wf, {"order": 7})
    body = wait_node_status(api, execution_id, "approve", "waiting")
    assert body["status"] == "running"

    wrong = api.post(f"/api/executions/{execution_id}/signals/payment", json={"x": 1})
    assert wrong.status_code == 409 and wrong.headers["content-type"].startswith("application/problem+json")
    assert "waits for the signal 'payment' (it waits for 'approval')" in wrong.json()["detail"]
    bad = api.post(f"/api/executions/{execution_id}/signals/not%20a%20name")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["path"] == "name"

    sent = api.post(f"/api/executions/{execution_id}/signals/approval", json={"approved": True, "by": "ada"})
    assert sent.status_code == 202, sent.text
    final = wait_final(api, execution_id)
    assert final["status"] == "completed"
    assert final["output"] == {"shipped": True, "by": "ada"}
    history = [e["type"] for e in api.get(f"/api/executions/{execution_id}/history").json()["events"]]
    assert history.count("node.waiting") == 1 and "node.completed" in history

    again = api.post(f"/api/executions/{execution_id}/signals/approval")
    assert again.status_code == 409
    assert api.post("/api/executions/no-such-execution/signals/approval").status_code == 404


def test_no_signal_before_the_timeout_dead_letters_the_node(system: System, api: httpx.Client) -> None:
    wf = unique("signal-timeout")
    post_workflow(api, approval_flow(wf, timeoutMs=300))
    execution_id = execute(api, wf)
    final = wait_final(api, execution_id)
    assert final["status"] == "failed"
    assert final["nodes"]["approve"]["status"] == "dead_lettered"
    assert final["nodes"]["approve"]["error"]["type"] == "SignalTimeout"
    deadline = time.monotonic() + 20  # the dead letter's row is projected apart from the execution's
    while not (letters := api.get("/api/dlq", params={"executionId": execution_id}).json()["items"]):
        assert time.monotonic() < deadline, "the dead letter was not listed"
        time.sleep(0.05)
    assert [letter["nodeId"] for letter in letters] == ["approve"]
