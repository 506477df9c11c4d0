"""Workflows run end to end through the real system: HTTP in, event log, worker, projector, HTTP out."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest

from .support import execute, post_workflow, unique, wait_final, wait_listed

pytestmark = pytest.mark.e2e


def node(node_id: str, type_: str = "transform", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **fields}


def completions(api: httpx.Client, execution_id: str) -> Counter[str]:
    events = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return Counter(e["nodeId"] for e in events if e["type"] == "node.completed")


def test_a_diamond_passes_each_output_on_and_joins_both_branches(api: httpx.Client) -> None:
    wf = unique("diamond")
    post_workflow(api, {"id": wf, "name": "Diamond", "nodes": [
        node("start", outputs=["a", "b"]),
        node("a", config={"expression": "{side: 'a', n: n}"}, outputs=["join"]),
        node("b", config={"set": {"side": "b"}}, outputs=["join"]),
        node("join", inputs=["a", "b"]),
    ]})  # fmt: skip
    execution_id = execute(api, wf, {"n": 7})
    body = wait_final(api, execution_id)
    assert body["status"] == "completed"
    assert body["output"] == {"a": {"side": "a", "n": 7}, "b": {"n": 7, "side": "b"}}
    assert body["nodes"]["start"]["output"] == {"n": 7}
    assert {n["status"] for n in body["nodes"].values()} == {"completed"}
    assert completions(api, execution_id) == Counter({"start": 1, "a": 1, "b": 1, "join": 1})


def test_a_fan_out_of_100_runs_every_branch_and_the_join_sees_them_all(api: httpx.Client) -> None:
    wf = unique("fanout")
    branches = [f"b{i}" for i in range(100)]
    nodes = [node("start", outputs=branches)]
    nodes += [node(b, config={"set": {"branch": b}}, outputs=["join"]) for b in branches]
    nodes.append(node("join"))
    post_workflow(api, {"id": wf, "name": "Fan-out", "nodes": nodes})
    execution_id = execute(api, wf, {"x": 1})
    body = wait_final(api, execution_id, timeout=60)
    assert body["status"] == "completed"
    assert body["output"] == {b: {"x": 1, "branch": b} for b in branches}
    assert set(completions(api, execution_id).values()) == {1}


def test_a_chain_hands_each_output_to_the_next_node(api: httpx.Client) -> None:
    wf = unique("chain")
    nodes = [
        node(f"n{i}", config={"expression": "{depth: sum([depth, `1`])}"}, outputs=[f"n{i + 1}"]) for i in range(9)
    ]
    nodes.append(node("n9", config={"expression": "{depth: sum([depth, `1`])}"}))
    post_workflow(api, {"id": wf, "name": "Chain", "nodes": nodes})
    body = wait_final(api, execute(api, wf, {"depth": 0}))
    assert body["status"] == "completed"
    assert body["output"] == {"depth": 10}


def test_a_condition_runs_one_branch_and_skips_the_other(api: httpx.Client) -> None:
    wf = unique("branch")
    post_workflow(api, {"id": wf, "name": "Branch", "nodes": [
        node("check", "condition", config={"expression": "amount > `100`", "trueBranch": "big", "falseBranch": "small"},
             outputs=["big", "small"]),
        node("big", config={"set": {"route": "manual review"}}, outputs=["done"]),
        node("small", config={"set": {"route": "auto"}}, outputs=["after-small"]),
        node("after-small", outputs=["done"]),
        node("done"),
    ]})  # fmt: skip
    body = wait_final(api, execute(api, wf, {"amount": 250}))
    assert body["status"] == "completed"
    assert body["nodes"]["small"]["status"] == "skipped"
    assert body["nodes"]["after-small"]["status"] == "skipped"
    assert body["output"] == {"big": {"amount": 250, "route": "manual review"}, "after-small": None}
    body = wait_final(api, execute(api, wf, {"amount": 5}))
    assert body["nodes"]["big"]["status"] == "skipped"
    assert body["nodes"]["after-small"]["output"] == {"amount": 5, "route": "auto"}


def test_a_failing_node_is_retried_with_backoff_until_it_succeeds(api: httpx.Client) -> None:
    wf = unique("retry")
    policy = {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 50}}
    post_workflow(api, {"id": wf, "name": "Retry", "nodes": [
        node("flaky", "flaky", config={"succeedOn": 3, "retryPolicy": policy}),
    ]})  # fmt: skip
    execution_id = execute(api, wf, "payload")
    body = wait_final(api, execution_id)
    assert body["status"] == "completed"
    assert body["output"] == {"attempt": 3, "input": "payload"}
    assert body["nodes"]["flaky"]["attempts"] == 3
    events = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    failed = [e for e in events if e["type"] == "node.failed"]
    assert [(e["attempt"], e["willRetry"]) for e in failed] == [(1, True), (2, True)]


def test_a_node_out_of_tries_is_dead_lettered_and_fails_the_execution(api: httpx.Client) -> None:
    wf = unique("dead")
    post_workflow(
        api,
        {"id": wf, "name": "Dead", "nodes": [node("boom", "always-fails", outputs=["never"]), node("never")]},
    )
    body = wait_final(api, execute(api, wf, {}))
    assert body["status"] == "failed"
    assert "this node always fails" in body["error"]["message"]
    assert body["nodes"]["boom"]["status"] == "dead_lettered"
    assert body["nodes"].get("never", {}).get("status", "pending") in ("pending", "cancelled")


def test_continue_on_fail_hands_the_error_to_the_next_node(api: httpx.Client) -> None:
    wf = unique("continue")
    policy = {"maxAttempts": 1, "continueOnFail": True}
    post_workflow(api, {"id": wf, "name": "Continue", "nodes": [
        node("boom", "always-fails", retryPolicy=policy, outputs=["after"]), node("after"),
    ]})  # fmt: skip
    body = wait_final(api, execute(api, wf, {}))
    assert body["status"] == "completed"
    assert body["output"]["_metadata"] == {"continuedOnFail": True, "attempts": 1}
    assert body["output"]["error"]["message"] == "this node always fails"


def test_a_delay_holds_the_branch_then_passes_its_input_on(api: httpx.Client) -> None:
    wf = unique("delay")
    post_workflow(api, {"id": wf, "name": "Delay", "nodes": [
        node("wait", "delay", config={"ms": 300}, outputs=["after"]), node("after"),
    ]})  # fmt: skip
    execution_id = execute(api, wf, {"v": 1})
    body = wait_final(api, execution_id)
    assert body["output"] == {"v": 1}
    events = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    assert "node.waiting" in [e["type"] for e in events]


def test_pause_holds_new_work_and_resume_finishes_it(api: httpx.Client) -> None:
    wf = unique("pause")
    post_workflow(api, {"id": wf, "name": "Pause", "nodes": [
        node("wait", "delay", config={"ms": 400}, outputs=["after"]), node("after"),
    ]})  # fmt: skip
    execution_id = execute(api, wf, 1)
    response = api.post(f"/api/executions/{execution_id}/pause")
    assert response.status_code == 202 and response.json()["status"] == "paused"
    assert api.post(f"/api/executions/{execution_id}/pause").status_code == 409
    time.sleep(0.8)  # the delay falls due while paused: it must wait for the resume
    assert api.get(f"/api/executions/{execution_id}").json()["nodes"].get("after", {}).get("status") in (
        None,
        "pending",
    )
    assert api.post(f"/api/executions/{execution_id}/resume").status_code == 202
    assert wait_final(api, execution_id)["status"] == "completed"
    assert api.post(f"/api/executions/{execution_id}/resume").status_code == 409


def test_cancel_stops_an_execution_for_good(api: httpx.Client) -> None:
    wf = unique("cancel")
    post_workflow(api, {"id": wf, "name": "Cancel", "nodes": [
        node("wait", "delay", config={"seconds": 30}, outputs=["after"]), node("after"),
    ]})  # fmt: skip
    execution_id = execute(api, wf, 1)
    response = api.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    body = wait_final(api, execution_id)
    assert body["status"] == "cancelled"
    assert {n["status"] for n in body["nodes"].values()} == {"cancelled"}
    assert api.post(f"/api/executions/{execution_id}/resume").status_code == 409


def test_the_same_idempotency_key_starts_one_execution(api: httpx.Client) -> None:
    wf = unique("idem")
    post_workflow(api, {"id": wf, "name": "Idem", "nodes": [node("only")]})
    first = execute(api, wf, 1, idempotencyKey="order-42")
    second = execute(api, wf, 1, idempotencyKey="order-42")
    assert first == second
    assert execute(api, wf, 1, idempotencyKey="order-43") != first


def test_executions_are_listed_newest_first_with_a_cursor(api: httpx.Client) -> None:
    wf = unique("list")
    post_workflow(api, {"id": wf, "name": "List", "nodes": [node("only")]})
    ids = [execute(api, wf, i) for i in range(5)]
    # Lists come from the read model, which follows the log a few tens of ms behind.
    done = wait_listed(api, {"workflowId": wf, "status": "completed"}, count=5)
    assert sorted(i["executionId"] for i in done["items"]) == sorted(ids)
    page = api.get("/api/executions", params={"workflowId": wf, "limit": 3}).json()
    assert [i["executionId"] for i in page["items"]] == ids[::-1][:3]
    rest = api.get("/api/executions", params={"workflowId": wf, "limit": 3, "cursor": page["nextCursor"]}).json()
    assert [i["executionId"] for i in rest["items"]] == ids[::-1][3:]
    assert rest["nextCursor"] is None


def test_an_http_node_cannot_reach_the_cloud_metadata_address(api: httpx.Client) -> None:
    wf = unique("ssrf")
    metadata = node("steal", "http", config={"url": "http://169.254.169.254/latest/meta-data/"})
    post_workflow(api, {"id": wf, "name": "SSRF", "nodes": [metadata]})
    body = wait_final(api, execute(api, wf, {}))
    assert body["status"] == "failed"
    assert body["nodes"]["steal"]["attempts"] == 1  # refused for good, not retried
    assert "SPANE_HTTP_DENY" in body["error"]["message"]
