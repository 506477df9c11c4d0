"""Sub-workflow nodes through the real system, over HTTP: the child's (mapped) output, joins after it, retries and
continueOnFail, the depth limit, a child workflow deleted later, and pause/resume/cancel cascading to children."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def node(node_id: str, type_: str = "transform", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **fields}


def sub(node_id: str, workflow_id: str, **fields: Any) -> dict[str, Any]:
    config = {"workflowId": workflow_id, **fields.pop("config", {})}
    return node(node_id, "sub-workflow", config=config, **fields)


def wait_status(api: httpx.Client, execution_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.get(f"/api/executions/{execution_id}").json()
        if body.get("status") == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} is not {status} after {timeout} s: {body}")


def wait_children(api: httpx.Client, execution_id: str, node_id: str, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 20
    children: list[str] = []
    while time.monotonic() < deadline:
        children = api.get(f"/api/executions/{execution_id}").json()["children"].get(node_id, [])
        if len(children) >= count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"{node_id} of {execution_id} started {children}, not {count} child(ren)")


def test_the_child_s_mapped_output_completes_the_node_and_the_join_after_it_runs(api: httpx.Client) -> None:
    child = unique("child")
    post_workflow(api, {"id": child, "name": "child", "nodes": [
        node("double", config={"expression": "{doubled: sum([n, n]), who: who}"}),
    ]})  # fmt: skip
    parent = unique("parent")
    post_workflow(api, {"id": parent, "name": "parent", "nodes": [
        node("start", outputs=["call", "side"]),
        sub("call", child, config={"inputMapping": {"n": "order.qty", "who": "'parent'"},
                                   "outputMapping": {"result.value": "doubled", "by": "who"}}, outputs=["join"]),
        node("side", config={"set": {"side": True}}, outputs=["join"]),
        node("join", inputs=["call", "side"]),
    ]})  # fmt: skip
    execution_id = execute(api, parent, {"order": {"qty": 21}})
    body = wait_final(api, execution_id)
    assert body["status"] == "completed", body
    assert body["output"]["call"] == {"result": {"value": 42}, "by": "parent"}
    assert body["output"]["side"]["side"] is True
    (child_id,) = wait_children(api, execution_id, "call")
    child_body = wait_final(api, child_id)
    assert child_body["status"] == "completed"
    assert (child_body["workflowId"], child_body["parentExecutionId"], child_body["depth"]) == (child, execution_id, 1)
    assert child_body["input"] == {"n": 21, "who": "parent"}
    waiting = [e for e in api.get(f"/api/executions/{execution_id}/history").json()["events"]
               if e["type"] == "node.waiting"]  # fmt: skip
    assert [e.get("childExecutionId") for e in waiting] == [child_id]


def test_a_failed_child_is_retried_by_a_new_child_then_continue_on_fail_lets_the_parent_go_on(
    api: httpx.Client,
) -> None:
    child = unique("failing-child")
    post_workflow(api, {"id": child, "name": "child", "nodes": [node("boom", "always-fails")]})
    parent = unique("parent")
    policy = {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 50}, "continueOnFail": True}
    post_workflow(api, {"id": parent, "name": "parent", "nodes": [
        sub("call", child, retryPolicy=policy, outputs=["after"]), node("after"),
    ]})  # fmt: skip
    execution_id = execute(api, parent, {})
    body = wait_final(api, execution_id)
    assert body["status"] == "completed", body
    assert body["nodes"]["call"]["status"] == "failed" and body["nodes"]["call"]["attempts"] == 2
    error = body["output"]["error"]
    assert error["type"] == "SubWorkflowFailed" and "this node always fails" in error["message"]
    children = wait_children(api, execution_id, "call", 2)
    assert len(set(children)) == 2
    assert {wait_final(api, c)["status"] for c in children} == {"failed"}


def test_a_workflow_that_reaches_itself_fails_at_the_depth_limit_naming_the_chain(api: httpx.Client) -> None:
    me = unique("recursive")
    post_workflow(api, {"id": me, "name": "me", "nodes": [
        sub("again", me, retryPolicy={"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 10}}),
    ]})  # fmt: skip
    execution_id = execute(api, me, {})
    body = wait_final(api, execution_id, timeout=60)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "MaxDepthExceeded"
    # SPANE_MAX_DEPTH is 32 by default: the root (depth 0) and 32 nested children, the 33rd refused.
    assert "SPANE_MAX_DEPTH (32)" in body["error"]["message"]
    assert " -> ".join([me] * 34) in body["error"]["message"]
    assert body["nodes"]["again"]["attempts"] == 1  # not retried: a retry cannot make the chain shorter
    listed = api.get("/api/executions", params={"workflowId": me, "limit": 100}).json()["items"]
    assert len(listed) <= 33


def test_a_child_workflow_deleted_later_fails_the_node_with_a_clear_error(api: httpx.Client) -> None:
    child = unique("doomed")
    post_workflow(api, {"id": child, "name": "child", "nodes": [node("a")]})
    parent = unique("parent")
    post_workflow(api, {"id": parent, "name": "parent", "nodes": [sub("call", child)]})
    assert api.delete(f"/api/workflows/{child}").status_code == 204
    body = wait_final(api, execute(api, parent, {}))
    assert body["status"] == "failed"
    assert body["nodes"]["call"]["status"] == "dead_lettered"
    assert f"the sub-workflow {child!r} cannot start" in body["nodes"]["call"]["error"]["message"]


def test_pause_resume_and_cancel_cascade_to_the_children_and_theirs(api: httpx.Client) -> None:
    grandchild = unique("grandchild")
    post_workflow(api, {"id": grandchild, "name": "gc", "nodes": [node("wait", "delay", config={"ms": 60_000})]})
    child = unique("child")
    post_workflow(api, {"id": child, "name": "child", "nodes": [sub("deeper", grandchild)]})
    parent = unique("parent")
    post_workflow(api, {"id": parent, "name": "parent", "nodes": [sub("call", child)]})
    execution_id = execute(api, parent, {})
    (child_id,) = wait_children(api, execution_id, "call")
    (grandchild_id,) = wait_children(api, child_id, "deeper")
    wait_status(api, grandchild_id, "running")

    assert api.post(f"/api/executions/{execution_id}/pause").status_code == 202
    wait_status(api, child_id, "paused")
    wait_status(api, grandchild_id, "paused")
    assert api.post(f"/api/executions/{execution_id}/resume").status_code == 202
    wait_status(api, child_id, "running")
    wait_status(api, grandchild_id, "running")
    assert api.post(f"/api/executions/{execution_id}/cancel").status_code == 202
    wait_status(api, child_id, "cancelled")
    wait_status(api, grandchild_id, "cancelled")
    assert wait_final(api, execution_id)["status"] == "cancelled"


def test_cancelling_a_child_alone_fails_the_parent_node(api: httpx.Client) -> None:
    child = unique("slow-child")
    post_workflow(api, {"id": child, "name": "child", "nodes": [node("wait", "delay", config={"ms": 60_000})]})
    parent = unique("parent")
    post_workflow(api, {"id": parent, "name": "parent", "nodes": [sub("call", child, retryPolicy={"maxAttempts": 1})]})
    execution_id = execute(api, parent, {})
    (child_id,) = wait_children(api, execution_id, "call")
    wait_status(api, child_id, "running")
    assert api.post(f"/api/executions/{child_id}/cancel").status_code == 202
    body = wait_final(api, execution_id)
    assert body["status"] == "failed"
    assert body["nodes"]["call"]["error"]["type"] == "SubWorkflowCancelled"
    assert child_id in body["nodes"]["call"]["error"]["message"]


def test_an_unknown_child_workflow_or_a_mapping_that_is_not_jmespath_is_a_422(api: httpx.Client) -> None:
    child = unique("child")
    post_workflow(api, {"id": child, "name": "child", "nodes": [node("a")]})
    unknown = api.post("/api/workflows", json={"id": unique("p"), "name": "p", "nodes": [sub("call", "nowhere")]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["path"] == "nodes[0].config.workflowId"
    assert "'call'" in unknown.json()["errors"][0]["message"]
    bad = api.post("/api/workflows", json={"id": unique("p"), "name": "p", "nodes": [
        sub("call", child, config={"inputMapping": {"x": "a[?"}}),
    ]})  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "nodes[0].config.inputMapping.x"
    assert "JMESPath" in bad.json()["errors"][0]["message"]
