"""The API over real Redis and Postgres: every bad input of API.md, auth, workflow versions, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from .api_support import Client, api_client, chain, error_paths, execute, make_settings, problem, save, unique

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    async with api_client(make_settings(redis_url, database_url, max_body_bytes=MAX_BODY)) as client:
        yield client


async def test_malformed_json_is_400(client: Client) -> None:
    for body in (b'{"id": "x", ', b"", b"nul"):
        response = await client.post("/api/workflows", content=body, headers={"content-type": "application/json"})
        problem(response, 400)
    wf = chain()
    await save(client, wf)
    response = await client.post(f"/api/workflows/{wf['id']}/execute", content=b"{", headers={"content-type": "x"})
    problem(response, 400)


async def test_wrong_types_are_400_with_paths(client: Client) -> None:
    assert error_paths(problem(await client.post("/api/workflows", json=chain(nodes="many")), 400)) == ["nodes"]
    problem(await client.post("/api/workflows", json=[1, 2]), 400)
    bad_node = chain(nodes=[{"id": 7, "type": "transform"}])
    assert error_paths(problem(await client.post("/api/workflows", json=bad_node), 400)) == ["nodes[0].id"]
    wf = chain()
    await save(client, wf)
    for body, path in (({"version": "one"}, "version"), ({"idempotencyKey": 5}, "idempotencyKey")):
        response = await client.post(f"/api/workflows/{wf['id']}/execute", json=body)
        assert error_paths(problem(response, 400)) == [path]
    problem(await client.get(f"/api/workflows/{wf['id']}?version=x"), 400)
    problem(await client.get("/api/executions?limit=0"), 400)
    problem(await client.get("/api/executions?status=sleeping"), 400)


CASES_422: list[tuple[str, dict[str, Any], str, str]] = [
    ("duplicate node ids", {"nodes": [{"id": "a", "type": "transform"}, {"id": "a", "type": "transform"}]},
     "nodes[1].id", "duplicate"),
    ("an edge to an unknown node", {"nodes": [{"id": "a", "type": "transform", "outputs": ["ghost"]}]},
     "nodes[0].outputs[0]", "ghost"),
    ("an edge from an unknown node", {"nodes": [{"id": "a", "type": "transform", "inputs": ["ghost"]}]},
     "nodes[0].inputs[0]", "ghost"),
    ("a cycle", {"nodes": [
        {"id": "s", "type": "transform", "outputs": ["a"]},
        {"id": "a", "type": "transform", "outputs": ["b"]},
        {"id": "b", "type": "transform", "outputs": ["a"]},
    ]}, "", "a -> b -> a"),
    ("an unknown entry node", {"entryNodeId": "nope"}, "entryNodeId", "nope"),
    ("an unreachable node", {"entryNodeId": "a", "nodes": [
        {"id": "a", "type": "transform"}, {"id": "island", "type": "transform"},
    ]}, "nodes[1]", "not reachable"),
    ("an unknown node type", {"nodes": [{"id": "a", "type": "teleport"}]}, "nodes[0].type", "teleport"),
    ("a bad node config", {"nodes": [{"id": "a", "type": "http", "config": {"url": 5}}]}, "nodes[0].config.url", ""),
    ("a policy twice, differently", {"nodes": [{"id": "a", "type": "transform", "timeoutMs": 5,
     "config": {"timeoutMs": 6}}]}, "nodes[0]", "timeoutms"),
    ("a bad cron expression", {"triggers": [{"type": "schedule", "config": {"cron": "every tuesday"}}]},
     "triggers[0].config.cron", ""),
    ("a bad workflow id", {"id": "Not Valid!"}, "id", ""),
]  # fmt: skip


@pytest.mark.parametrize(("case", "overrides", "path", "needle"), CASES_422, ids=[c[0] for c in CASES_422])
async def test_invalid_definitions_are_422_with_precise_errors(
    client: Client, case: str, overrides: dict[str, Any], path: str, needle: str
) -> None:
    definition = chain() | overrides
    body = problem(await client.post("/api/workflows", json=definition), 422)
    assert body["errors"], case
    assert any(p.startswith(path) for p in error_paths(body)), (case, body)
    assert needle.lower() in str(body["errors"]).lower(), (case, body)
    problem(await client.get(f"/api/workflows/{definition['id']}"), 404)  # nothing was stored


async def test_two_workflows_may_listen_on_one_webhook_path(client: Client) -> None:
    hook = [{"type": "webhook", "config": {"path": unique("hook"), "method": "POST"}}]
    await save(client, chain(triggers=hook))
    await save(client, chain(triggers=hook))  # both start on a call: tests/integration/test_webhooks.py


async def test_unknown_ids_are_404(client: Client) -> None:
    ghost = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    problem(await client.get("/api/workflows/no-such-workflow"), 404)
    problem(await client.get("/api/workflows/no-such-workflow/versions"), 404)
    problem(await client.post("/api/workflows/no-such-workflow/execute", json={"input": 1}), 404)
    problem(await client.delete("/api/workflows/no-such-workflow"), 404)
    problem(await client.get(f"/api/executions/{ghost}"), 404)
    problem(await client.get(f"/api/executions/{ghost}/history"), 404)
    for command in ("pause", "resume", "cancel"):
        problem(await client.post(f"/api/executions/{ghost}/{command}"), 404)
    problem(await client.get("/api/no-such-route"), 404)


async def test_a_wrong_method_is_405(client: Client) -> None:
    problem(await client.put("/api/workflows"), 405)
    problem(await client.delete("/api/executions"), 405)
    problem(await client.get("/api/workflows/x/execute"), 405)


async def test_a_body_too_large_is_413(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    big = {"input": "x" * MAX_BODY}
    problem(await client.post(f"/api/workflows/{wf['id']}/execute", json=big), 413)
    problem(await client.post("/api/workflows", json=chain(description="x" * MAX_BODY)), 413)


async def test_versions_are_immutable_and_identical_definitions_are_not_stored_twice(client: Client) -> None:
    wf = chain()
    created = await client.post("/api/workflows", json=wf)
    assert (created.status_code, created.json()) == (201, {"workflowId": wf["id"], "version": 1})
    again = await client.post("/api/workflows", json=wf)
    assert (again.status_code, again.json()) == (200, {"workflowId": wf["id"], "version": 1})
    changed = chain(wf["id"], "a", "b", "c")
    assert await save(client, changed) == 2

    latest = (await client.get(f"/api/workflows/{wf['id']}")).json()
    assert latest["version"] == 2 and [n["id"] for n in latest["definition"]["nodes"]] == ["a", "b", "c"]
    first = (await client.get(f"/api/workflows/{wf['id']}?version=1")).json()
    assert first["version"] == 1 and [n["id"] for n in first["definition"]["nodes"]] == ["a", "b"]
    problem(await client.get(f"/api/workflows/{wf['id']}?version=3"), 404)
    versions = (await client.get(f"/api/workflows/{wf['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2]

    body = problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"version": 3}), 422)
    assert error_paths(body) == ["version"]
    accepted = await client.post(f"/api/workflows/{wf['id']}/execute", json={"version": 1, "input": 1})
    assert accepted.json()["version"] == 1


async def test_a_deleted_workflow_is_gone_but_its_executions_stay(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"])
    deleted = await client.delete(f"/api/workflows/{wf['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    problem(await client.get(f"/api/workflows/{wf['id']}"), 404)
    problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={}), 404)
    problem(await client.delete(f"/api/workflows/{wf['id']}"), 404)
    assert (await client.get(f"/api/executions/{execution_id}")).status_code == 200
    assert await save(client, wf) == 2  # the id can be used again


async def test_custom_node_types_are_accepted_besides_the_built_ins(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url)
    custom = chain(nodes=[{"id": "a", "type": "enrich-user", "config": {"anything": 1}, "outputs": ["b"]},
                          {"id": "b", "type": "http", "config": {"url": 5}}])  # fmt: skip
    async with api_client(settings, node_types={"enrich-user": None, "http": None}) as client:
        body = problem(await client.post("/api/workflows", json=custom), 422)
        assert error_paths(body) == ["nodes[1].config.url"]  # a custom type cannot loosen a built-in's schema
        custom["nodes"][1]["config"]["url"] = "https://example.com"
        await save(client, custom)


async def test_auth_guards_the_api_but_not_health_or_webhooks(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, api_token="s3cret")
    async with api_client(settings) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = await client.get("/api/workflows", headers=headers)
            problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        problem(await client.post("/api/workflows", json=chain()), 401)
        assert (await client.get("/api/workflows", headers={"Authorization": "Bearer s3cret"})).status_code == 200
        for path in ("/health", "/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200, path


async def test_health_ready_metrics_and_openapi(client: Client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "postgres": "ok"}
    wf = chain()
    await save(client, wf)
    await execute(client, wf["id"])
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    # Executions are counted from the log by the projector (none runs here); the API reads the shared state: the
    # execution's first task waits in its stream, for a worker that none here is.
    assert 'spane_tasks_waiting{stream="spane:{0}:tasks"} 1.0' in metrics.text
    requests = [line for line in metrics.text.splitlines() if line.startswith("spane_http_requests_total")]
    assert any('route="/api/workflows/{workflow_id}/execute",status="202"' in r for r in requests), requests
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/api/workflows", "/api/executions/{execution_id}", "/ready"} <= set(schema["paths"])


async def test_text_responses_name_their_charset_once(client: Client) -> None:
    for path, media_type in (
        ("/", "text/html"),
        ("/console/style.css", "text/css"),
        ("/console/js/main.js", "text/javascript"),
        ("/metrics", "text/plain"),
    ):
        content_type = (await client.get(path)).headers["content-type"]
        assert content_type.startswith(media_type) and content_type.count("charset=") == 1, (path, content_type)


async def test_without_postgres_the_api_still_starts_and_serves_from_redis(redis_url: str) -> None:
    settings = make_settings(redis_url, "postgresql://nobody@127.0.0.1:1/none")
    async with api_client(settings) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["redis"] == "ok" and checks["postgres"].startswith("error")
        assert (await client.get("/health")).status_code == 200
        problem(await client.get("/api/workflows"), 503)
        wf = chain()
        await save(client, wf)
        execution_id = await execute(client, wf["id"], {"input": 1})
        assert (await client.get(f"/api/executions/{execution_id}")).json()["status"] == "running"
        assert len((await client.get(f"/api/executions/{execution_id}/history")).json()["events"]) == 2
        problem(await client.get("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 503)


async def test_without_redis_the_api_answers_503(database_url: str) -> None:
    async with api_client(make_settings("redis://127.0.0.1:1/0", database_url)) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["redis"].startswith("error")
        assert response.json()["checks"]["postgres"] == "ok"
        problem(await client.post("/api/workflows", json=chain()), 503)
        problem(await client.get("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 503)


async def test_a_read_model_query_the_schema_does_not_fit_is_a_500_not_an_outage(
    redis_url: str, database_url: str
) -> None:
    """A database error that is not an outage is a bug: a logged 500, not a 503 that says "try again later"."""
    admin = await asyncpg.connect(database_url)
    name = unique("readmodel-drift")
    base = database_url.rsplit("/", 1)[0]
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        settings = make_settings(redis_url, f"{base}/{name}")
        async with api_client(settings) as client:
            assert (await client.get("/api/workflows")).status_code == 200
        drifted = await asyncpg.connect(f"{base}/{name}")
        await drifted.execute("ALTER TABLE workflows RENAME COLUMN name TO title")
        await drifted.close()
        async with api_client(settings) as client:
            body = problem(await client.get("/api/workflows"), 500)
            assert "name" not in body["detail"]  # internals stay in the log
    finally:
        await admin.close()


async def test_asyncapi_describes_the_streams_between_the_services(client: Client) -> None:
    doc = (await client.get("/asyncapi")).json()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"spane:{p}:tasks", "spane:{p}:events", "spane:{p}:timers", "spane:{w}:events"} <= addresses
    task = doc["components"]["schemas"]["Task"]
    assert {"executionId", "nodeId", "attempt", "traceparent"} <= set(task["properties"])
    assert "ExecutionStarted" in doc["components"]["schemas"]


async def test_a_sub_workflow_node_must_name_an_existing_workflow(client: Client) -> None:
    child = unique("child")
    await save(client, chain(child, "c"))
    parent = {"id": unique("parent"), "name": "p", "nodes": [
        {"id": "ok", "type": "sub-workflow", "config": {"workflowId": child}, "outputs": ["gone", "later"]},
        {"id": "gone", "type": "sub-workflow", "config": {"workflowId": "no-such-workflow"}},
        {"id": "later", "type": "sub-workflow", "config": {"workflowId": child, "version": 2}},
    ]}  # fmt: skip
    body = problem(await client.post("/api/workflows", json=parent), 422)
    assert error_paths(body) == ["nodes[1].config.workflowId", "nodes[2].config.version"]
    assert "'gone'" in body["errors"][0]["message"] and "no-such-workflow" in body["errors"][0]["message"]
    # A workflow may start itself (its depth is bounded at run time).
    me = unique("me")
    await save(client, {"id": me, "name": "me", "nodes": [{"id": "again", "type": "sub-workflow",
                                                           "config": {"workflowId": me}}]})  # fmt: skip


async def test_a_bad_signal_name_is_400_naming_only_the_name(client: Client) -> None:
    # Without a body, Litestar also listed the absent optional body as a problem: {"path": "data", "message": "'data'"}
    path = "/api/executions/e1/signals/bad%20name"
    assert error_paths(problem(await client.post(path), 400)) == ["name"]
    assert error_paths(problem(await client.post(path, json={"a": 1}), 400)) == ["name"]
