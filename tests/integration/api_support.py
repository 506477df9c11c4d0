"""Helpers for the API integration tests: the app over real Redis and Postgres, a stand-in worker, the projector."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
from litestar import Litestar
from spane_api.app import create_app
from spane_api.deps import Dependencies
from spane_core.commands import Complete, MarkStarted
from spane_core.ids import ExecutionId
from spane_core.observe.telemetry import Telemetry
from spane_core.settings import Settings
from spane_core.state import NodeStatus
from spane_core.store.executions import Transition
from spane_core.validation import NodeTypeSpec
from spane_projector.service import run_projector

PROBLEM_JSON = "application/problem+json"


def make_settings(redis_url: str, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"redis_url": redis_url, "database_url": database_url, "api_token": None}
    return Settings(**(values | overrides))


class Client(httpx.AsyncClient):
    """An HTTP client of the app, run in the test's own event loop so that tests may use its resources too."""

    def __init__(self, app: Litestar) -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar's ASGI types are narrower
        super().__init__(transport=transport, base_url="http://localhost")  # a name the tokenless API answers
        self.app = app


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, node_types: Mapping[str, NodeTypeSpec | None] | None = None, telemetry: Telemetry | None = None
) -> AsyncIterator[Client]:
    """The app started (its lifespan runs in a task of its own: anyio scopes must exit in the task they entered)."""
    app = create_app(settings, node_types, telemetry)
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    serving = asyncio.create_task(serve())
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if serving.done():
        serving.result()  # the startup failed: raise its error
    try:
        async with Client(app) as client:
            yield client
    finally:
        stop.set()
        await serving


def deps_of(client: Client) -> Dependencies:
    deps: Dependencies = client.app.state.deps
    return deps


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def chain(workflow_id: str | None = None, *node_ids: str, **extra: Any) -> dict[str, Any]:
    """A valid definition: transform nodes in a line (default ``a -> b``)."""
    ids = node_ids or ("a", "b")
    nodes = [
        {"id": n, "type": "transform", "outputs": [ids[i + 1]] if i + 1 < len(ids) else []} for i, n in enumerate(ids)
    ]
    return {"id": workflow_id or unique("wf"), "name": "Test flow", "nodes": nodes, **extra}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of ``response``, asserting its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    assert all(set(e) == {"path", "message"} for e in body["errors"]), body
    return body


def error_paths(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body["errors"]]


async def save(client: Client, definition: dict[str, Any], status: int = 201) -> int:
    response = await client.post("/api/workflows", json=definition)
    assert response.status_code == status, response.text
    version: int = response.json()["version"]
    return version


async def execute(client: Client, workflow_id: str, body: dict[str, Any] | None = None) -> str:
    response = await client.post(f"/api/workflows/{workflow_id}/execute", json=body or {"input": None})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["executionId"]
    return execution_id


async def run_queued(client: Client, execution_id: str, output: Callable[[str], Any] = lambda n: {"node": n}) -> None:
    """Do what a worker does: start and complete every queued node, until none is left."""
    store = deps_of(client).executions
    eid = ExecutionId(execution_id)
    while True:
        state = await store.load(eid)
        assert state is not None
        queued = [(n, s) for n, s in state.nodes.items() if s.status is NodeStatus.QUEUED]
        if not queued:
            return
        for node_id, node in queued:
            started = await store.apply(Transition(eid, [MarkStarted(node_id, node.queued_seq)]))
            assert started.state is not None
            lease = started.state.node(node_id).lease
            await store.apply(Transition(eid, [Complete(node_id, lease, output(node_id))]))


@contextlib.asynccontextmanager
async def projector(settings: Settings) -> AsyncIterator[None]:
    """The real projector, folding the log into the read models while the block runs."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"the condition did not hold within {within} s"
        await asyncio.sleep(0.05)
