"""Webhooks over HTTP against real Redis and Postgres: starts, signatures, idempotency and every refusal."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from spane_api.problems import PROBLEM_JSON

from .api_support import Client, api_client, chain, deps_of, eventually, make_settings, problem, projector, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    # With an API token: webhooks stay open all the same.
    settings = make_settings(redis_url, database_url, api_token="s3cret-token", max_body_bytes=4096)
    async with api_client(settings) as client:
        yield client


def hooked(path: str, **config: Any) -> dict[str, Any]:
    return chain(triggers=[{"type": "webhook", "config": {"path": path, **config}}])


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


AUTH = {"Authorization": "Bearer s3cret-token"}


async def started_input(client: Client, execution_id: str) -> Any:
    state = await deps_of(client).executions.load(execution_id)
    assert state is not None
    return state.input


async def test_a_call_starts_the_workflow_with_the_body_as_input(client: Client) -> None:
    path = f"{unique('orders')}/created"
    wf = hooked(path, method="POST")
    await client.post("/api/workflows", json=wf, headers=AUTH)
    response = await client.post(f"/api/webhooks/{path}", json={"order": 7})
    assert response.status_code == 202, response.text
    (execution_id,) = response.json()["executionIds"]
    assert set(response.json()) == {"executionIds"}
    assert await started_input(client, execution_id) == {"order": 7}
    state = await deps_of(client).executions.load(execution_id)
    assert state is not None and state.workflow_id == wf["id"]


async def test_the_method_defaults_to_post_and_a_wrong_one_is_405_with_allow(client: Client) -> None:
    path = unique("hook")
    await save_hook(client, hooked(path))
    assert (await client.post(f"/api/webhooks/{path}", json={})).status_code == 202
    response = await client.put(f"/api/webhooks/{path}", json={})
    problem(response, 405)
    assert response.headers["allow"] == "POST"


async def save_hook(client: Client, definition: dict[str, Any]) -> None:
    response = await client.post("/api/workflows", json=definition, headers=AUTH)
    assert response.status_code == 201, response.text


async def test_two_workflows_on_one_path_and_method_both_start(client: Client) -> None:
    path = unique("shared")
    first, second = hooked(path, method="PUT"), hooked(path, method="PUT")
    await save_hook(client, first)
    await save_hook(client, second)
    response = await client.put(f"/api/webhooks/{path}", json=[1, 2])
    assert response.status_code == 202, response.text
    ids = response.json()["executionIds"]
    states = [await deps_of(client).executions.load(i) for i in ids]
    assert [s.workflow_id for s in states if s] == [first["id"], second["id"]]
    # Deleting one stops its trigger; the other still listens.
    assert (await client.delete(f"/api/workflows/{first['id']}", headers=AUTH)).status_code == 204
    response = await client.put(f"/api/webhooks/{path}", json={})
    (only,) = response.json()["executionIds"]
    state = await deps_of(client).executions.load(only)
    assert state is not None and state.workflow_id == second["id"]


async def test_a_trigger_with_a_secret_needs_the_signature_of_the_raw_body(client: Client) -> None:
    path = unique("signed")
    await save_hook(client, hooked(path, secret="hush"))
    body = json.dumps({"amount": 12}).encode()
    headers = {"content-type": "application/json"}
    problem(await client.post(f"/api/webhooks/{path}", content=body, headers=headers), 401)
    wrong = {**headers, "X-Spane-Signature": sign("not-hush", body)}
    problem(await client.post(f"/api/webhooks/{path}", content=body, headers=wrong), 401)
    tampered = {**headers, "X-Spane-Signature": sign("hush", body + b" ")}
    problem(await client.post(f"/api/webhooks/{path}", content=body, headers=tampered), 401)
    good = {**headers, "X-Spane-Signature": sign("hush", body)}
    response = await client.post(f"/api/webhooks/{path}", content=body, headers=good)
    assert response.status_code == 202, response.text
    assert await started_input(client, response.json()["executionIds"][0]) == {"amount": 12}


async def test_an_idempotency_key_makes_a_redelivery_start_nothing_new(client: Client) -> None:
    path = unique("redelivered")
    await save_hook(client, hooked(path))
    key = {"Idempotency-Key": unique("delivery")}
    first = (await client.post(f"/api/webhooks/{path}", json={"n": 1}, headers=key)).json()["executionIds"]
    again = (await client.post(f"/api/webhooks/{path}", json={"n": 1}, headers=key)).json()["executionIds"]
    assert again == first
    other = (await client.post(f"/api/webhooks/{path}", json={"n": 1})).json()["executionIds"]
    assert other != first


async def test_a_get_without_a_body_starts_the_workflow_with_its_query_and_a_secret_signs_the_query(
    client: Client,
) -> None:
    path = unique("clicked")
    await save_hook(client, hooked(path, method="GET"))
    response = await client.get(f"/api/webhooks/{path}?order=7&tag=a&tag=b")
    assert response.status_code == 202, response.text
    assert await started_input(client, response.json()["executionIds"][0]) == {"order": "7", "tag": ["a", "b"]}
    bare = await client.get(f"/api/webhooks/{path}")  # a link with no query at all
    assert await started_input(client, bare.json()["executionIds"][0]) == {}
    # With a secret, the signature covers the query string: the input a GET carries cannot be changed.
    signed_path = unique("signed-get")
    await save_hook(client, hooked(signed_path, method="GET", secret="hush"))
    good = {"X-Spane-Signature": sign("hush", b"amount=12")}
    response = await client.get(f"/api/webhooks/{signed_path}?amount=12", headers=good)
    assert response.status_code == 202, response.text
    assert await started_input(client, response.json()["executionIds"][0]) == {"amount": "12"}
    body = problem(await client.get(f"/api/webhooks/{signed_path}?amount=99999", headers=good), 401)
    assert "HMAC-SHA256 of the query string" in body["detail"]


async def test_refusals(client: Client) -> None:
    path = unique("refused")
    await save_hook(client, hooked(path))
    assert problem(await client.post(f"/api/webhooks/{unique('nobody')}", json={}), 404)["detail"]
    problem(await client.post(f"/api/webhooks/{path}", content=b""), 400)
    problem(await client.post(f"/api/webhooks/{path}", content=b"{not json"), 400)
    problem(await client.post(f"/api/webhooks/{path}", content=b"x" * 5000), 413)
    response = await client.post(f"/api/webhooks/{path}", content=b"{not json")
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.mark.parametrize("bad", ["/leading", "trailing/", "a//b", "a b", "a/../b", "?q=1"])
async def test_a_path_that_is_not_url_segments_is_422(client: Client, bad: str) -> None:
    body = problem(await client.post("/api/workflows", json=hooked(bad), headers=AUTH), 422)
    assert [e["path"] for e in body["errors"]] == ["triggers[0].config.path"]


async def test_other_routes_still_need_the_token(client: Client) -> None:
    problem(await client.get("/api/workflows"), 401)
    problem(await client.post("/api/workflows", json=chain()), 401)


async def test_a_secret_is_never_read_back_and_posting_the_mask_keeps_it(
    client: Client, redis_url: str, database_url: str
) -> None:
    path = unique("masked")
    wf = hooked(path, secret="hush")
    await save_hook(client, wf)
    read = (await client.get(f"/api/workflows/{wf['id']}", headers=AUTH)).json()["definition"]
    assert read["triggers"][0]["config"]["secret"] == "***"
    async with projector(make_settings(redis_url, database_url)):

        async def listed() -> bool:
            items = (await client.get("/api/workflows", headers=AUTH)).json()["items"]
            return any(i["workflowId"] == wf["id"] for i in items)

        await eventually(listed)
    items = (await client.get("/api/workflows", headers=AUTH)).json()["items"]
    (item,) = [i for i in items if i["workflowId"] == wf["id"]]
    assert item["triggers"][0]["config"]["secret"] == "***"
    assert "hush" not in (await client.get(f"/api/workflows/{wf['id']}", headers=AUTH)).text
    # The definition as read, posted back: identical to the stored one, so the same version, secret kept.
    again = await client.post("/api/workflows", json=read, headers=AUTH)
    assert again.status_code == 200 and again.json()["version"] == 1
    body = b"{}"
    signed = {"X-Spane-Signature": sign("hush", body), "content-type": "application/json"}
    assert (await client.post(f"/api/webhooks/{path}", content=body, headers=signed)).status_code == 202
    # A mask with no stored secret behind it is refused.
    fresh = hooked(unique("nothing-stored"), secret="***")
    refused = problem(await client.post("/api/workflows", json=fresh, headers=AUTH), 422)
    assert [e["path"] for e in refused["errors"]] == ["triggers[0].config.secret"]
