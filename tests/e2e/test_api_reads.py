"""The API's reads over the running system: read-your-writes, commands on a live execution, listing, history."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from .support import FINAL, execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def delayed(workflow_id: str, ms: int) -> dict[str, Any]:
    return {"id": workflow_id, "name": "Delayed", "nodes": [
        {"id": "wait", "type": "delay", "config": {"ms": ms}, "outputs": ["after"]},
        {"id": "after", "type": "transform", "config": {"set": {"done": True}}},
    ]}  # fmt: skip


def test_an_execution_is_visible_at_once_and_its_history_is_in_order(api: httpx.Client) -> None:
    wf = unique("ryw")
    post_workflow(api, delayed(wf, 200))
    execution_id = execute(api, wf, {"n": 1})
    first = api.get(f"/api/executions/{execution_id}")
    assert first.status_code == 200 and first.json()["status"] == "running"
    body = wait_final(api, execution_id)
    assert (body["status"], body["output"]) == ("completed", {"n": 1, "done": True})
    events = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "execution.started" and events[-1]["type"] == "execution.completed"
    assert "node.waiting" in [e["type"] for e in events]


def test_pause_holds_a_delay_and_resume_finishes_it(api: httpx.Client) -> None:
    wf = unique("pause")
    post_workflow(api, delayed(wf, 300))
    execution_id = execute(api, wf, {})
    paused = api.post(f"/api/executions/{execution_id}/pause")
    assert (paused.status_code, paused.json()["status"]) == (202, "paused")
    time.sleep(0.6)  # the delay falls due while paused: nothing may run
    assert api.get(f"/api/executions/{execution_id}").json()["status"] == "paused"
    assert api.post(f"/api/executions/{execution_id}/resume").json()["status"] == "running"
    assert wait_final(api, execution_id)["status"] == "completed"
    assert api.post(f"/api/executions/{execution_id}/cancel").status_code == 409


def test_a_cancelled_execution_stays_cancelled(api: httpx.Client) -> None:
    wf = unique("cancel")
    post_workflow(api, delayed(wf, 60_000))
    execution_id = execute(api, wf, {})
    assert api.post(f"/api/executions/{execution_id}/cancel").json()["status"] == "cancelled"
    body = wait_final(api, execution_id)
    assert body["status"] == "cancelled" and body["nodes"]["wait"]["status"] == "cancelled"


def test_executions_are_listed_newest_first_page_by_page(api: httpx.Client) -> None:
    wf = unique("list")
    post_workflow(api, delayed(wf, 0))
    started = [execute(api, wf, {"i": i}) for i in range(5)]
    for execution_id in started:
        wait_final(api, execution_id)
    deadline = time.monotonic() + 30
    while True:  # the projector lists what it has folded; wait until it has all five, final
        items = api.get(f"/api/executions?workflowId={wf}&limit=100").json()["items"]
        if (len(items) == 5 and all(i["status"] in FINAL for i in items)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    seen: list[str] = []
    cursor = ""
    while True:
        page = api.get(f"/api/executions?workflowId={wf}&limit=2&cursor={cursor}").json()
        seen += [i["executionId"] for i in page["items"]]
        if page["nextCursor"] is None:
            break
        cursor = page["nextCursor"]
    assert seen == started[::-1]
    listed = api.get("/api/workflows").json()["items"]
    assert wf in [w["workflowId"] for w in listed]
