"""Large values through the API over real Redis and Postgres: a large input is stored aside and the Start carries
its reference; every read (snapshot, read model, history, archived history) shows the real values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from spane_core.claim_check import REF_KEY, canonical_json, payload_id, reference, reference_id
from spane_core.ids import ExecutionId

from spane.embedded import free_port

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

LIMIT = 4_096
BIG_INPUT = [{"order": i, "note": "n" * 100} for i in range(100)]  # ~12 KB of JSON
OUTPUTS = {"a": ["a" * 10_000], "b": ["b" * 10_000]}


def ref_of(value: Any) -> dict[str, Any]:
    data = canonical_json(value)
    return reference(payload_id(data), len(data))


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    async with api_client(make_settings(redis_url, database_url, payload_inline_max=LIMIT)) as client:
        yield client


async def test_every_read_shows_the_real_values_of_what_the_log_references(
    client: Client, redis_url: str, database_url: str
) -> None:
    deps = deps_of(client)
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"input": BIG_INPUT})
    state = await deps.executions.load(ExecutionId(execution_id))
    assert state is not None and state.input == ref_of(BIG_INPUT)  # the Start carried the reference

    refs = {node_id: await deps.payloads.store(value) for node_id, value in OUTPUTS.items()}  # as a worker would
    await run_queued(client, execution_id, output=lambda node_id: refs[node_id])
    from_snapshot = (await client.get(f"/api/executions/{execution_id}")).json()
    assert from_snapshot["input"] == BIG_INPUT
    assert {n: v["output"] for n, v in from_snapshot["nodes"].items()} == OUTPUTS
    assert from_snapshot["output"] == OUTPUTS["b"]
    history = (await client.get(f"/api/executions/{execution_id}/history")).json()
    assert history["events"][0]["input"] == BIG_INPUT
    completed = {e["nodeId"]: e["output"] for e in history["events"] if e["type"] == "node.completed"}
    assert completed == OUTPUTS
    assert [e["output"] for e in history["events"] if e["type"] == "execution.completed"] == [OUTPUTS["b"]]

    async with projector(make_settings(redis_url, database_url)):

        async def caught_up() -> bool:
            seq = await deps.db.fetchval("SELECT last_seq FROM executions WHERE execution_id = $1", execution_id)
            return bool(seq == len(history["events"]))

        await eventually(caught_up)
    row = await deps.db.fetchrow("SELECT input, output FROM executions WHERE execution_id = $1", execution_id)
    assert row is not None  # and it holds references:
    assert (row["input"], row["output"]) == (ref_of(BIG_INPUT), refs["b"])
    # With Redis's copy gone, the read model and the archived log answer alone, with the same real values.
    keys = deps.executions.keys(execution_id)
    await deps.redis.delete(keys.snapshot(execution_id), keys.log(execution_id))
    assert (await client.get(f"/api/executions/{execution_id}")).json() == from_snapshot
    assert (await client.get(f"/api/executions/{execution_id}/history")).json() == history


async def test_a_small_input_stays_inline(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    execution_id = await execute(client, wf["id"], {"input": {"n": 1}})
    state = await deps_of(client).executions.load(ExecutionId(execution_id))
    assert state is not None and state.input == {"n": 1}


async def test_an_input_holding_a_reference_is_refused(client: Client) -> None:
    wf = chain()
    await save(client, wf)
    forged = {"data": ref_of(["anything"])}
    body = problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"input": forged}), 422)
    assert [e["path"] for e in body["errors"]] == ["input"]
    assert REF_KEY in body["errors"][0]["message"]
    # Only the exact shape is reserved: an object that merely uses the key is data like any other.
    lookalike = {REF_KEY: "mine", "size": "large"}
    execution_id = await execute(client, wf["id"], {"input": lookalike})
    assert reference_id(lookalike) is None
    assert (await client.get(f"/api/executions/{execution_id}")).json()["input"] == lookalike


async def test_a_large_input_needs_postgres_and_a_small_one_does_not(redis_url: str) -> None:
    away = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    async with api_client(make_settings(redis_url, away, payload_inline_max=LIMIT)) as client:
        wf = chain()
        await save(client, wf)
        problem(await client.post(f"/api/workflows/{wf['id']}/execute", json={"input": BIG_INPUT}), 503)
        await execute(client, wf["id"], {"input": {"n": 1}})
