"""The OpenAPI document tells the truth: every documented /api route needs the token, OPTIONS lists every method of
a path, and the links name operations that exist."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .api_support import api_client, chain, error_paths, make_settings, problem, unique

pytestmark = pytest.mark.integration

TOKEN = "s3cret"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_api_route_of_the_openapi_document_needs_the_token(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, api_token=TOKEN)
    async with api_client(settings) as client:
        schema = (await client.get("/schema/openapi.json")).json()
        guarded = [(m, p) for m, p in _operations(schema) if p.startswith("/api/") and "/webhooks" not in p]
        assert len(guarded) >= 10, guarded
        for method, path in guarded:
            url = re.sub(r"\{[^}]+\}", "some-id", path)
            response = await client.request(method, url, json={} if method != "GET" else None)
            problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", (method, path)
            if path.endswith("/events"):
                continue  # a live stream (SSE) that does not end: the test client would wait for its end
            authorized = await client.request(
                method, url, json={} if method != "GET" else None, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert authorized.status_code != 401, (method, path, authorized.text)
        # Every guarded operation says so in the document.
        for method, path in guarded:
            assert schema["paths"][path][method.lower()].get("security") == [{"bearer": []}], (method, path)


async def test_options_lists_every_method_of_each_path(redis_url: str, database_url: str) -> None:
    async with api_client(make_settings(redis_url, database_url)) as client:
        schema = (await client.get("/schema/openapi.json")).json()
        documented: dict[str, set[str]] = {}
        for method, path in _operations(schema):
            documented.setdefault(path, set()).add(method)
        for path, methods in documented.items():
            response = await client.options(re.sub(r"\{[^}]+\}", "some-id", path))
            assert response.status_code == 204, path
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == methods | {"OPTIONS"}, (path, allowed)
        wrong = await client.put("/api/workflows")
        problem(wrong, 405)
        assert {m.strip() for m in wrong.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}


async def test_links_lead_from_a_stored_workflow_to_its_executions(redis_url: str, database_url: str) -> None:
    async with api_client(make_settings(redis_url, database_url)) as client:
        schema = (await client.get("/schema/openapi.json")).json()
        operation_ids = {
            item[method]["operationId"]: (method, path)
            for path, item in schema["paths"].items()
            for method in item
            if isinstance(item[method], dict) and "operationId" in item[method]
        }
        save = schema["paths"]["/api/workflows"]["post"]
        execute = schema["paths"]["/api/workflows/{workflow_id}/execute"]["post"]
        links = {**save["responses"]["201"]["links"], **execute["responses"]["202"]["links"]}
        assert {"execute", "read", "history", "cancel"} <= set(links)
        for link in links.values():
            _method, path = operation_ids[link["operationId"]]  # the linked operation exists
            (parameter,) = link["parameters"]
            assert f"{{{parameter}}}" in path
        # The definition's schema names its required fields; the execute body is optional.
        body = save["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["required"]) == {"id", "nodes"}
        assert body["properties"]["nodes"]["items"]["required"] == ["id", "type"]
        assert execute["requestBody"]["required"] is False


async def test_what_the_fuzzer_found_answers_4xx(redis_url: str, database_url: str) -> None:
    huge = 10**30
    async with api_client(make_settings(redis_url, database_url)) as client:
        wf = chain()
        assert (await client.post("/api/workflows", json={**wf, "maxConcurrency": 3.0})).status_code == 201
        problem(await client.post("/api/workflows", json={**wf, "maxConcurrency": huge}), 400)
        slow = {**wf, "nodes": [{"id": "a", "type": "transform", "timeoutMs": huge}]}
        assert error_paths(problem(await client.post("/api/workflows", json=slow), 422)) == ["nodes[0].timeoutMs"]
        deep = {**wf, "id": unique("wf"), "nodes": [{"id": "a", "type": "transform", "config": {"set": {"x": huge}}}]}
        problem(await client.post("/api/workflows", json=deep), 400)
        problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"input": {"x": huge}}), 400)
        problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"version": 2**40}), 400)
        problem(await client.get(f"/api/workflows/{wf['id']}", params={"version": 2**40}), 400)
        problem(await client.get("/api/executions", params={"cursor": "a\x00b"}), 400)
        problem(await client.get("/api/executions/a%00b"), 404)
        problem(await client.get("/api/executions/a%00b/history"), 404)
        assert (await client.post(f"/api/workflows/{wf['id']}/execute")).status_code == 202  # the body is optional
        selection = {"workflowId": wf["id"], "status": {}}
        assert error_paths(problem(await client.post("/api/executions/cancel", json=selection), 422)) == ["status"]


async def test_the_schema_is_served_as_documents_and_no_page_loads_scripts_from_elsewhere(
    redis_url: str, database_url: str
) -> None:
    async with api_client(make_settings(redis_url, database_url)) as client:
        document = await client.get("/schema/openapi.json")
        assert document.status_code == 200 and document.json()["info"]["title"] == "SPANE"
        yaml = await client.get("/schema/openapi.yaml")
        assert yaml.status_code == 200 and "openapi:" in yaml.text
        root = await client.get("/schema")
        assert root.status_code == 200 and "<script" not in root.text
        for page in ("/schema/redoc", "/schema/swagger", "/schema/rapidoc", "/schema/elements"):
            response = await client.get(page)
            assert response.status_code == 404 or "<script" not in response.text, page
