"""The API's defences, over HTTP against real Redis and Postgres: every route but the open ones needs the token, and
hostile bodies get a 4xx problem, never a 500."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from litestar.routes import HTTPRoute

from .api_support import Client, api_client, chain, make_settings, problem, unique

pytestmark = pytest.mark.integration

TOKEN = "t0ken-under-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# What API.md leaves open: webhooks (their own signatures), liveness, readiness, metrics; and the console's static
# assets, the OpenAPI and AsyncAPI documents, which hold no data.
OPEN = re.compile(r"^(/api/webhooks/.*|/health|/ready|/metrics|/asyncapi|/|/console/.*|/schema.*)$")


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    settings = make_settings(redis_url, database_url, api_token=TOKEN, max_body_bytes=1_000_000)
    async with api_client(settings) as client:
        yield client


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_that_is_not_open_needs_the_token(client: Client) -> None:
    checked = []
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute) or OPEN.match(route.path):
            continue
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            response = await client.request(method, concrete(route.path), headers={"Authorization": "Bearer nope"})
            problem(response, 401)
            checked.append(f"{method} {route.path}")
    # The SSE streams and the operations routes are among them.
    assert {"GET /api/events", "GET /api/executions/{execution_id:str}/events", "GET /api/dlq"} <= set(checked)
    assert "POST /api/circuit-breakers/{name:str}/reset" in checked


async def test_json_nested_too_deeply_is_400_not_500(client: Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = problem(await client.post("/api/workflows", content=deep, headers=AUTH), 400)
    assert "nested too deeply" in body["detail"]
    wf = chain(triggers=[{"type": "webhook", "config": {"path": unique("deep")}}])
    assert (await client.post("/api/workflows", json=wf, headers=AUTH)).status_code == 201
    path = wf["triggers"][0]["config"]["path"]
    body = problem(await client.post(f"/api/webhooks/{path}", content=deep), 400)
    assert "nested too deeply" in body["detail"]


async def test_ready_names_what_failed_without_its_address_or_user() -> None:
    settings = make_settings("redis://127.0.0.1:1/0", "postgresql://someuser:pw@127.0.0.1:1/none")
    async with api_client(settings) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"].startswith("error: ") and checks["postgres"].startswith("error: "), checks
    assert not any(secret in response.text for secret in ("127.0.0.1", ":1", "someuser", "pw@")), response.text


async def test_a_browser_request_from_another_site_changes_nothing(redis_url: str, database_url: str) -> None:
    # No API token (`spane dev` on a developer's machine): a page of any site could post to it.
    async with api_client(make_settings(redis_url, database_url)) as client:
        wf = chain()
        as_text = {"Content-Type": "text/plain"}  # a "simple" request: the browser sends it without a preflight
        for site in ("cross-site", "same-site"):
            headers = {**as_text, "Sec-Fetch-Site": site, "Origin": "http://evil.example"}
            body = problem(await client.post("/api/workflows", content=json.dumps(wf), headers=headers), 403)
            assert "another site" in body["detail"]
        problem(await client.get(f"/api/workflows/{wf['id']}"), 404)  # nothing was stored
        # The console's own calls, a typed URL, and clients that are not browsers go through; reads too.
        for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
            response = await client.post("/api/workflows", content=json.dumps(wf), headers={**as_text, **headers})
            assert response.status_code in (200, 201), response.text
        assert (await client.get("/api/workflows", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 200
        # Webhooks are for callers anywhere.
        hook = chain(triggers=[{"type": "webhook", "config": {"path": unique("anywhere")}}])
        await client.post("/api/workflows", json=hook)
        path = hook["triggers"][0]["config"]["path"]
        called = await client.post(f"/api/webhooks/{path}", json={}, headers={"Sec-Fetch-Site": "cross-site"})
        assert called.status_code == 202, called.text


async def test_without_a_token_on_a_loopback_address_only_local_names_are_answered(
    redis_url: str, database_url: str
) -> None:
    # A page whose own host name resolves to 127.0.0.1 (DNS rebinding) is same-origin for the browser: its requests
    # carry its name in Host, which no local client sends.
    async with api_client(make_settings(redis_url, database_url, host="127.0.0.1")) as client:
        for host in ("evil.example", "evil.example:8000", "10.0.0.7:8000", "spane.internal"):
            body = problem(await client.get("/api/workflows", headers={"Host": host}), 403)
            assert "addressed to localhost" in body["detail"] and "SPANE_API_TOKEN" in body["detail"]
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"):
            assert (await client.get("/api/workflows", headers={"Host": host})).status_code == 200, host
        # What is open stays open: a webhook caller or a probe may use any name.
        assert (await client.get("/health", headers={"Host": "evil.example"})).status_code == 200
    # Bound to every address (a container), or with a token, other names are the deployer's to allow.
    async with api_client(make_settings(redis_url, database_url, host="0.0.0.0")) as client:
        assert (await client.get("/api/workflows", headers={"Host": "spane.internal"})).status_code == 200
    settings = make_settings(redis_url, database_url, host="127.0.0.1", api_token=TOKEN)
    async with api_client(settings) as client:
        headers = {"Host": "spane.internal", **AUTH}
        assert (await client.get("/api/workflows", headers=headers)).status_code == 200
