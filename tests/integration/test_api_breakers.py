"""The limits routes of the API over a real Redis: listing breakers and buckets, resetting a breaker, the token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from spane_core.node_limits import Breaker, Bucket, NodeLimits
from spane_core.store.limiter import Limiter

from .api_support import Client, api_client, deps_of, make_settings, problem, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    async with api_client(make_settings(redis_url, database_url)) as client:
        yield client


async def test_a_definition_with_a_breaker_and_a_rate_limit_is_accepted(client: Client) -> None:
    node = {
        "id": "a",
        "type": "transform",
        "circuitBreaker": {"failureThreshold": 3},
        "rateLimit": {"max": 5, "perMs": 1000},
    }
    response = await client.post("/api/workflows", json={"id": unique("lim"), "name": "l", "nodes": [node]})
    assert response.status_code == 201, response.text


async def test_breakers_and_buckets_are_listed_and_a_breaker_reset(client: Client, redis_url: str) -> None:
    assert (await client.get("/api/circuit-breakers")).json() == {"items": []}
    assert (await client.get("/api/rate-limits")).json() == {"items": []}
    limiter = Limiter(deps_of(client).redis, 1)
    limits = NodeLimits(breaker=Breaker("pay", 1, 1, 60_000), buckets=(Bucket("type:pay", 10, 1000),))
    await limiter.admit([("e|a|1", limits)])
    await limiter.finish([("e|a|1", limits, "failure")])

    (item,) = (await client.get("/api/circuit-breakers")).json()["items"]
    assert item["name"] == "pay" and item["state"] == "open" and item["failures"] == 1
    assert item["openUntil"].endswith("Z") or "+00:00" in item["openUntil"]
    (bucket,) = (await client.get("/api/rate-limits")).json()["items"]
    assert bucket == {"name": "type:pay", "max": 10, "perMs": 1000, "available": 9, "reserved": 0}

    response = await client.post("/api/circuit-breakers/pay/reset")
    assert response.status_code == 202 and response.json() == {"name": "pay", "state": "closed"}
    (item,) = (await client.get("/api/circuit-breakers")).json()["items"]
    assert (item["state"], item["failures"], item["openUntil"]) == ("closed", 0, None)
    problem(await client.post("/api/circuit-breakers/nope/reset"), 404)
    metrics = (await client.get("/metrics")).text
    assert 'spane_circuit_breaker_transitions_total{breaker="pay",state="closed"} 1.0' in metrics


async def test_the_limits_routes_need_the_token(redis_url: str, database_url: str) -> None:
    async with api_client(make_settings(redis_url, database_url, api_token="s3cret")) as client:
        for method, path in (("GET", "/api/circuit-breakers"), ("GET", "/api/rate-limits"),
                             ("POST", "/api/circuit-breakers/x/reset")):  # fmt: skip
            assert (await client.request(method, path)).status_code == 401
