"""Executions through the API over real Redis and Postgres: start, idempotency, commands, history, listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from spane_core.keys import WorkflowKeys

from .api_support import (
    Client,
    api_client,
    chain,
    deps_of,
    eventually,
    execute,
    make_settings,
    problem,
    projector,
    run_queued,
    save,
)

pytestmark = pytest.mark.integration

NODE_KEYS = {"status", "attempts", "startedAt", "finishedAt", "output", "error"}
EXECUTION_KEYS = {
    "executionId", "workflowId", "version", "status", "input", "output", "error", "parentExecutionId", "depth",
    "startedAt", "finishedAt", "nodes", "children", "priority", "runAt", "deadline", "rerunOf",
}  # fmt: skip


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    async with api_client(make_settings(redis_url, database_url)) as client:
        yield client


@pytest.fixture
async def projected(redis_url: str, database_url: str, client: Client) -> AsyncIterator[None]:
    async with projector(make_settings(redis_url, database_url)):
        yield


async def test_an_execution_is_readable_right_after_it_starts(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    response = await client.post(f"/api/workflows/{wf['id']}/execute", json={"input": {"n": 1}})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted == {
        "executionId": accepted["executionId"],
        "workflowId": wf["id"],
        "version": 1,
        "status": "running",
    }
    body = (await client.get(f"/api/executions/{accepted['executionId']}")).json()
    assert set(body) == EXECUTION_KEYS
    assert (body["status"], body["input"], body["depth"], body["finishedAt"]) == ("running", {"n": 1}, 0, None)
    assert body["startedAt"].endswith("Z")
    assert list(body["nodes"]) == ["a"] and set(body["nodes"]["a"]) == NODE_KEYS  # b: nothing happened yet
    assert body["nodes"]["a"]["status"] == "queued"


async def test_initial_data_is_accepted_for_input(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"initialData": [1, 2]})
    assert (await client.get(f"/api/executions/{execution_id}")).json()["input"] == [1, 2]
    response = await client.post(f"/api/workflows/{wf['id']}/execute", json={"input": 1, "initialData": 2})
    problem(response, 422)
    empty = await client.post(f"/api/workflows/{wf['id']}/execute")
    assert empty.status_code == 202


async def test_the_same_idempotency_key_names_the_same_execution(client: Client) -> None:
    wf, other = chain(), chain()
    await save(client, wf)
    await save(client, other)
    first = await execute(client, wf["id"], {"input": 1, "idempotencyKey": "order-17"})
    again = await execute(client, wf["id"], {"input": 2, "idempotencyKey": "order-17"})
    assert again == first
    assert (await client.get(f"/api/executions/{first}")).json()["input"] == 1
    assert await execute(client, wf["id"], {"idempotencyKey": "order-18"}) != first
    assert await execute(client, other["id"], {"idempotencyKey": "order-17"}) != first
    history = (await client.get(f"/api/executions/{first}/history")).json()["events"]
    assert [e["type"] for e in history].count("execution.started") == 1
    problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"idempotencyKey": ""}), 400)


async def test_concurrent_retries_with_one_key_start_one_execution(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    body = {"input": 1, "idempotencyKey": "burst"}
    ids = await asyncio.gather(*(execute(client, wf["id"], body) for _ in range(8)))
    assert len(set(ids)) == 1
    history = (await client.get(f"/api/executions/{ids[0]}/history")).json()["events"]
    assert [e["type"] for e in history] == ["execution.started", "node.queued"]


async def test_a_key_claimed_before_a_crash_still_starts_its_execution(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    # The API died after claiming the key and before starting: the retry starts the claimed execution.
    claimed = "01M00000000000000000000000"
    await deps_of(client).redis.set(WorkflowKeys.idempotency(wf["id"], "k"), claimed)
    assert await execute(client, wf["id"], {"input": 1, "idempotencyKey": "k"}) == claimed
    assert (await client.get(f"/api/executions/{claimed}")).json()["status"] == "running"


async def command(client: Client, execution_id: str, name: str, status: int = 202) -> dict[str, Any]:
    response = await client.post(f"/api/executions/{execution_id}/{name}")
    if status != 202:
        return problem(response, status)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["executionId"] == execution_id
    return body


async def test_pause_resume_and_cancel_follow_the_rules(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"])
    assert (await command(client, execution_id, "pause"))["status"] == "paused"
    await command(client, execution_id, "pause", 409)
    assert (await client.get(f"/api/executions/{execution_id}")).json()["status"] == "paused"
    assert (await command(client, execution_id, "resume"))["status"] == "running"
    await command(client, execution_id, "resume", 409)
    assert (await command(client, execution_id, "cancel"))["status"] == "cancelled"
    for name in ("pause", "resume", "cancel"):
        body = await command(client, execution_id, name, 409)
        assert "cancelled" in body["detail"]
    view = (await client.get(f"/api/executions/{execution_id}")).json()
    assert view["status"] == "cancelled" and view["finishedAt"] is not None
    assert {n["status"] for n in view["nodes"].values()} == {"cancelled"}


async def test_a_completed_execution_shows_its_output_and_refuses_commands(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"input": 5})
    await run_queued(client, execution_id)
    view = (await client.get(f"/api/executions/{execution_id}")).json()
    assert (view["status"], view["output"], view["error"]) == ("completed", {"node": "b"}, None)
    node = view["nodes"]["a"]
    assert (node["status"], node["attempts"], node["output"]) == ("completed", 1, {"node": "a"})
    assert node["startedAt"] <= node["finishedAt"] <= view["finishedAt"]
    for name in ("pause", "resume", "cancel"):
        await command(client, execution_id, name, 409)


async def test_history_is_the_log_in_order(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"input": 1})
    await command(client, execution_id, "pause")
    await command(client, execution_id, "resume")
    await run_queued(client, execution_id)
    events = (await client.get(f"/api/executions/{execution_id}/history")).json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events] == [
        # Resume queues again what was queued but had not started while paused.
        "execution.started", "node.queued", "execution.paused", "execution.resumed", "node.queued", "node.started",
        "node.completed", "node.queued", "node.started", "node.completed", "execution.completed",
    ]  # fmt: skip
    assert all(e["executionId"] == execution_id and e["workflowId"] == wf["id"] for e in events)
    assert events[1]["nodeId"] == "a" and events[1]["at"].endswith("Z")


async def test_listing_pages_newest_first_with_a_cursor(client: Client, projected: None) -> None:
    wf, other = chain(), chain()
    await save(client, wf)
    await save(client, other)
    started = [await execute(client, wf["id"]) for _ in range(5)]
    elsewhere = await execute(client, other["id"])
    await command(client, started[0], "cancel")

    async def all_projected() -> bool:
        body = (await client.get("/api/executions?limit=100")).json()
        return len(body["items"]) == 6 and any(i["status"] == "cancelled" for i in body["items"])

    await eventually(all_projected)
    seen: list[str] = []
    cursor = None
    while True:
        query = f"/api/executions?workflowId={wf['id']}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query)).json()
        assert len(page["items"]) <= 2
        seen += [item["executionId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == started[::-1]
    cancelled = (await client.get("/api/executions?status=cancelled")).json()["items"]
    assert [i["executionId"] for i in cancelled] == [started[0]]
    newest = (await client.get("/api/executions?limit=1")).json()
    assert [i["executionId"] for i in newest["items"]] == [elsewhere] and newest["nextCursor"] == elsewhere


async def test_workflows_are_listed_from_the_read_model(client: Client, projected: None) -> None:
    hook = [{"type": "webhook", "config": {"path": "orders-x", "method": "POST"}}]
    wf, gone = chain(name="Orders", triggers=hook), chain()
    await save(client, wf)
    await save(client, chain(wf["id"], "a", "b", "c", name="Orders", triggers=hook))
    await save(client, gone)
    await client.delete(f"/api/workflows/{gone['id']}")

    async def listed() -> bool:
        items = (await client.get("/api/workflows")).json()["items"]
        return [i["workflowId"] for i in items] == [wf["id"]] and items[0]["version"] == 2

    await eventually(listed)
    item = (await client.get("/api/workflows")).json()["items"][0]
    assert (item["name"], item["triggers"][0]["config"]["path"]) == ("Orders", "orders-x")
    assert item["updatedAt"].endswith("Z")
    versions = (await client.get(f"/api/workflows/{wf['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2] and all(v["createdAt"] for v in versions)


async def test_the_read_model_and_the_snapshot_show_the_same_execution(client: Client, projected: None) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"input": {"x": 1}, "priority": 8, "timeoutMs": 600_000})
    await run_queued(client, execution_id)
    from_snapshot = (await client.get(f"/api/executions/{execution_id}")).json()
    assert from_snapshot["priority"] == 8 and from_snapshot["deadline"] > from_snapshot["startedAt"]
    assert from_snapshot["runAt"] is None and from_snapshot["rerunOf"] is None
    history = (await client.get(f"/api/executions/{execution_id}/history")).json()
    await _forget_in_redis(client, execution_id, len(history["events"]))
    # With Redis's copy gone (say, trimmed after archiving), the read model answers alone, with the same values.
    assert (await client.get(f"/api/executions/{execution_id}")).json() == from_snapshot
    assert (await client.get(f"/api/executions/{execution_id}/history")).json() == history
    # A command on it is refused for its state, as before its copy left Redis, not as if it never existed.
    assert "completed" in problem(await client.post(f"/api/executions/{execution_id}/pause"), 409)["detail"]
    problem(await client.post("/api/executions/01ARZ3NDEKTSV4RRFFQ69G5FAV/pause"), 404)


async def _forget_in_redis(client: Client, execution_id: str, events: int) -> None:
    """Once the read model holds the execution's ``events``, drop Redis's copy: the API answers from Postgres."""
    deps = deps_of(client)

    async def caught_up() -> bool:
        seq = await deps.db.fetchval("SELECT last_seq FROM executions WHERE execution_id = $1", execution_id)
        return bool(seq == events)

    await eventually(caught_up)
    keys = deps.executions.keys(execution_id)
    await deps.redis.delete(keys.snapshot(execution_id), keys.log(execution_id))


async def test_a_scheduled_execution_and_a_rerun_show_their_options_from_either_store(
    client: Client, projected: None
) -> None:
    wf = chain()
    await save(client, wf)
    run_at = "2999-01-01T00:00:00.000Z"  # never due in this test: no scheduler runs
    scheduled = await execute(client, wf["id"], {"input": {"x": 1}, "runAt": "2999-01-01T00:00:00Z"})
    failed = await execute(client, wf["id"], {"input": {"x": 2}})
    assert (await client.post(f"/api/executions/{failed}/cancel")).status_code == 202
    rerun = await client.post(f"/api/executions/{failed}/rerun", json={})
    assert rerun.status_code == 202, rerun.text
    rerun_id = rerun.json()["executionId"]
    expected = {scheduled: ("scheduled", run_at, None), rerun_id: ("running", None, failed)}
    for execution_id, (status, at, of) in expected.items():
        body = (await client.get(f"/api/executions/{execution_id}")).json()
        assert (body["status"], body["runAt"], body["rerunOf"], body["priority"]) == (status, at, of, 5)
        events = len((await client.get(f"/api/executions/{execution_id}/history")).json()["events"])
        await _forget_in_redis(client, execution_id, events)
        assert (await client.get(f"/api/executions/{execution_id}")).json() == body
