"""The size limits of a definition (SPANE_MAX_NODES, SPANE_MAX_EDGES): a larger one is a 422 that names the limit;
one at the limit is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .api_support import Client, api_client, chain, make_settings, problem, save, unique

pytestmark = pytest.mark.integration

MAX_NODES = 50
MAX_EDGES = 60


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    settings = make_settings(redis_url, database_url, max_nodes=MAX_NODES, max_edges=MAX_EDGES)
    async with api_client(settings) as client:
        yield client


def fan_out(width: int) -> dict[str, object]:
    branches = [f"b{i}" for i in range(width)]
    nodes: list[dict[str, object]] = [{"id": "start", "type": "transform", "outputs": branches}]
    nodes += [{"id": b, "type": "transform", "outputs": ["join"]} for b in branches]
    nodes.append({"id": "join", "type": "transform", "inputs": branches})  # the same edges named twice: counted once
    return {"id": unique("wide"), "name": "wide", "nodes": nodes}


async def test_a_definition_with_more_nodes_than_the_limit_is_422_naming_it(client: Client) -> None:
    at_limit = chain(None, *(f"n{i}" for i in range(MAX_NODES)))
    await save(client, at_limit)
    body = problem(await client.post("/api/workflows", json=chain(None, *(f"n{i}" for i in range(MAX_NODES + 1)))), 422)
    (error,) = body["errors"]
    assert error["path"] == "nodes"
    assert f"at most {MAX_NODES}" in error["message"] and "SPANE_MAX_NODES" in error["message"]


async def test_a_definition_with_more_edges_than_the_limit_is_422_naming_it(client: Client) -> None:
    await save(client, fan_out(MAX_EDGES // 2))  # 2 edges per branch, each named on both sides
    body = problem(await client.post("/api/workflows", json=fan_out(MAX_EDGES // 2 + 1)), 422)
    (error,) = body["errors"]
    assert f"more than {MAX_EDGES} edges" in error["message"] and "SPANE_MAX_EDGES" in error["message"]
