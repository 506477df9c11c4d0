"""A webhook trigger's replay window (``maxAgeSeconds``): a signed timestamp, calls outside the window refused, a
replay within it answered without starting anything new."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .api_support import Client, api_client, chain, error_paths, make_settings, problem, unique

pytestmark = pytest.mark.integration

SECRET = "replay-s3cret"


@pytest.fixture
async def client(redis_url: str, database_url: str) -> AsyncIterator[Client]:
    async with api_client(make_settings(redis_url, database_url)) as client:
        yield client


def signed(body: bytes, timestamp: int | str, secret: str = SECRET) -> dict[str, str]:
    content = f"{timestamp}.".encode() + body
    signature = "sha256=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    return {"X-Spane-Timestamp": str(timestamp), "X-Spane-Signature": signature}


async def windowed_hook(client: Client, **config: Any) -> str:
    path = unique("replay")
    trigger = {"type": "webhook", "config": {"path": path, "secret": SECRET, "maxAgeSeconds": 300, **config}}
    response = await client.post("/api/workflows", json=chain(triggers=[trigger]))
    assert response.status_code == 201, response.text
    return path


async def test_a_fresh_signed_call_starts_and_its_replay_starts_nothing_new(client: Client) -> None:
    path = await windowed_hook(client)
    body = b'{"order": 1}'
    headers = signed(body, int(time.time()))
    first = await client.post(f"/api/webhooks/{path}", content=body, headers=headers)
    assert first.status_code == 202, first.text
    again = await client.post(f"/api/webhooks/{path}", content=body, headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    # The same body a second later is a new call (a new signature), as the sender meant.
    later = await client.post(f"/api/webhooks/{path}", content=body, headers=signed(body, int(time.time()) + 1))
    assert later.status_code == 202 and later.json() != first.json()


async def test_a_call_outside_the_window_or_without_its_timestamp_is_refused(client: Client) -> None:
    path = await windowed_hook(client)
    body = b'{"order": 2}'
    now = int(time.time())
    for headers in (signed(body, now - 301), signed(body, now + 301), signed(body, "soon")):
        assert (
            "X-Spane-Timestamp"
            in problem(await client.post(f"/api/webhooks/{path}", content=body, headers=headers), 401)["detail"]
        )
    old_style = {"X-Spane-Signature": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    problem(await client.post(f"/api/webhooks/{path}", content=body, headers=old_style), 401)  # no timestamp
    # A timestamp that the signature does not cover (changed in transit) fails the signature.
    forged = {**signed(body, now), "X-Spane-Timestamp": str(now + 1)}
    assert (
        "<timestamp>.<body>"
        in problem(await client.post(f"/api/webhooks/{path}", content=body, headers=forged), 401)["detail"]
    )


async def test_a_window_needs_a_secret_and_a_sensible_length(client: Client) -> None:
    for config, path in (
        ({"path": unique("w"), "maxAgeSeconds": 300}, "triggers[0].config.maxAgeSeconds"),
        ({"path": unique("w"), "secret": SECRET, "maxAgeSeconds": 0}, "triggers[0].config.maxAgeSeconds"),
        ({"path": unique("w"), "secret": SECRET, "maxAgeSeconds": "300"}, "triggers[0].config.maxAgeSeconds"),
    ):
        body = problem(
            await client.post("/api/workflows", json=chain(triggers=[{"type": "webhook", "config": config}])), 422
        )
        assert error_paths(body) == [path]
