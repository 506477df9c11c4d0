"""Helpers for the e2e tests: post a workflow, run it, wait for it to finish."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

FINAL = {"completed", "failed", "cancelled"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post_workflow(api: httpx.Client, definition: dict[str, Any]) -> int:
    response = api.post("/api/workflows", json=definition)
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


def execute(api: httpx.Client, workflow_id: str, input: Any = None, **extra: Any) -> str:
    response = api.post(f"/api/workflows/{workflow_id}/execute", json={"input": input, **extra})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["executionId"]
    return execution_id


def wait_final(api: httpx.Client, execution_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /api/executions/{id} until the execution is final in the read model."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/executions/{execution_id}")
        if response.status_code == 200:
            body = response.json()
            if body["status"] in FINAL:
                return body
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s; last seen: {body}")


def wait_listed(api: httpx.Client, params: dict[str, Any], count: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /api/executions with ``params`` until it lists ``count`` executions."""
    deadline = time.monotonic() + timeout
    page: dict[str, Any] = {}
    while time.monotonic() < deadline:
        page = api.get("/api/executions", params={**params, "limit": count}).json()
        if len(page["items"]) >= count:
            return page
        time.sleep(0.05)
    raise AssertionError(f"{count} executions were not listed in {timeout} s; last seen: {page}")


def run_failing_limited_workflow(api: httpx.Client, workflow_id: str, host: str, per_second: int) -> None:
    """A workflow with a schedule whose one http node calls ``host``, where nothing listens, under a breaker that
    opens at its first failure (one breaker per host: a test's own) and a rate limit of ``per_second``; run once."""
    node = {
        "id": "call", "type": "http", "config": {"url": f"http://{host}:9/x"},
        "retryPolicy": {"maxAttempts": 1}, "circuitBreaker": {"failureThreshold": 1, "timeoutMs": 600000},
        "rateLimit": {"max": per_second, "perMs": 1000},
    }  # fmt: skip
    schedule = {"type": "schedule", "config": {"cron": "0 0 1 1 *", "timezone": "Europe/Paris"}}
    post_workflow(api, {"id": workflow_id, "name": "ops", "nodes": [node], "triggers": [schedule]})
    assert wait_final(api, execute(api, workflow_id, {}))["status"] == "failed"
