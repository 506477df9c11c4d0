"""Every bad input of API.md gets a clear problem+json answer over HTTP: never a 500, never half-applied."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


def valid(**overrides: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "id": unique("bad"),
        "name": "Bad input",
        "nodes": [
            {"id": "a", "type": "transform", "outputs": ["b"]},
            {"id": "b", "type": "transform"},
        ],
    }
    definition.update(overrides)
    return definition


def paths(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body["errors"]]


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post("/api/workflows", content=b'{"id": "x", ', headers={"content-type": "application/json"})
    problem(response, 400)


def test_wrong_types_are_400(api: httpx.Client) -> None:
    problem(api.post("/api/workflows", json=valid(nodes="not a list")), 400)
    problem(api.post("/api/workflows", json=[1, 2]), 400)


CASES_422: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "duplicate node ids",
        {"nodes": [{"id": "a", "type": "transform"}, {"id": "a", "type": "transform"}]},
        "nodes[1].id",
        "duplicate",
    ),
    (
        "an edge to an unknown node",
        {"nodes": [{"id": "a", "type": "transform", "outputs": ["ghost"]}]},
        "nodes[0].outputs[0]",
        "ghost",
    ),
    (
        "a cycle",
        {"nodes": [
            {"id": "s", "type": "transform", "outputs": ["a"]},
            {"id": "a", "type": "transform", "outputs": ["b"]},
            {"id": "b", "type": "transform", "outputs": ["a"]},
        ]},
        "",
        "a -> b -> a",
    ),
    ("an unknown entry node", {"entryNodeId": "nope"}, "entryNodeId", "nope"),
    (
        "an unreachable node",
        {"entryNodeId": "a", "nodes": [
            {"id": "a", "type": "transform"}, {"id": "island", "type": "transform"},
        ]},
        "nodes[1]",
        "reachable",
    ),
    ("an unknown node type", {"nodes": [{"id": "a", "type": "teleport"}]}, "nodes[0].type", "teleport"),
    ("a bad node config", {"nodes": [{"id": "a", "type": "http", "config": {"url": 5}}]}, "nodes[0].config.url", ""),
    (
        "a bad cron expression",
        {"triggers": [{"type": "schedule", "config": {"cron": "every tuesday"}}]},
        "triggers[0].config.cron",
        "",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "overrides", "path", "needle"), CASES_422, ids=[c[0] for c in CASES_422])
def test_invalid_definitions_are_422_with_precise_errors(
    api: httpx.Client, case: str, overrides: dict[str, Any], path: str, needle: str
) -> None:
    definition = valid(**overrides)
    body = problem(api.post("/api/workflows", json=definition), 422)
    assert body["errors"], case
    if path:
        assert any(p.startswith(path) for p in paths(body)), (case, body)
    assert needle.lower() in str(body["errors"]).lower(), (case, body)
    problem(api.get(f"/api/workflows/{definition['id']}"), 404)  # nothing was stored


def test_a_webhook_path_that_is_not_url_path_segments_is_422(api: httpx.Client) -> None:
    hook = [{"type": "webhook", "config": {"path": f"/{unique('hook')}//x", "method": "POST"}}]
    body = problem(api.post("/api/workflows", json=valid(triggers=hook)), 422)
    assert paths(body) == ["triggers[0].config.path"]


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    problem(api.get("/api/workflows/no-such-workflow"), 404)
    problem(api.post("/api/workflows/no-such-workflow/execute", json={"input": 1}), 404)
    problem(api.get("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404)
    problem(api.get("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV/history"), 404)
    problem(api.post("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel"), 404)
    problem(api.delete("/api/workflows/no-such-workflow"), 404)


def test_a_wrong_method_is_405(api: httpx.Client) -> None:
    problem(api.put("/api/workflows"), 405)


def test_a_body_too_large_is_413(api: httpx.Client) -> None:
    big = {"input": "x" * (11 * 1024 * 1024)}
    wf = valid()
    post_workflow(api, wf)
    problem(api.post(f"/api/workflows/{wf['id']}/execute", json=big), 413)


def test_an_unknown_version_is_rejected(api: httpx.Client) -> None:
    wf = valid()
    post_workflow(api, wf)
    response = api.post(f"/api/workflows/{wf['id']}/execute", json={"input": 1, "version": 9})
    assert response.status_code in (404, 422)
    problem(response, response.status_code)


def test_resuming_a_completed_execution_is_409(api: httpx.Client) -> None:
    wf = valid()
    post_workflow(api, wf)
    execution_id = execute(api, wf["id"], 1)
    assert wait_final(api, execution_id)["status"] == "completed"
    problem(api.post(f"/api/executions/{execution_id}/resume"), 409)
    problem(api.post(f"/api/executions/{execution_id}/pause"), 409)
    problem(api.post(f"/api/executions/{execution_id}/cancel"), 409)
