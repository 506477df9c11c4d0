"""Shared limits over HTTP, with two worker processes calling a local scripted HTTP server: a rate limit holds
across both, a circuit breaker opens, defers, half-opens with one probe and closes, and a reset closes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from spane.embedded import RedisServer, free_port

from .conftest import create_database, start_spane, stop_process
from .support import execute, unique, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Call:
    path: str
    key: str  # the Idempotency-Key: executionId:nodeId:attempt
    started: float
    ended: float = 0.0


@dataclass
class Script:
    """What the server answers (paths starting with /fail answer 500 while ``failing``) and what it saw."""

    failing: bool = True
    delay_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, prefix: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path.startswith(prefix)]


def serve(script: Script) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            call = Call(self.path, self.headers.get("Idempotency-Key", ""), time.time())
            with script.lock:
                script.calls.append(call)
            time.sleep(script.delay_s)
            status = 500 if self.path.startswith("/fail") and script.failing else 200
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            call.ended = time.time()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)  # every 127.x address: one breaker per host name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Limited:
    api: httpx.Client
    script: Script
    target: str


@pytest.fixture(scope="module")
def limited(postgres_server: str, servers_dir: Path) -> Iterator[Limited]:
    """`spane dev` (its own worker) plus a second `spane worker` process, and the scripted server."""
    script = Script()
    server = serve(script)
    with RedisServer(servers_dir / "limits-redis", persistent=False) as redis:
        port = free_port()
        env = {
            "SPANE_REDIS_URL": redis.url,
            "SPANE_DATABASE_URL": create_database(postgres_server),
            "SPANE_PORT": str(port),
            "SPANE_SCHEDULER_INTERVAL_MS": "20",
            "SPANE_LIMIT_POLL_MS": "200",
        }
        log = servers_dir / "limits-spane.log"
        dev = start_spane(["dev"], env, log, ready_url=f"http://127.0.0.1:{port}/ready")
        worker = start_spane(["worker"], {**env, "SPANE_CONSUMER_NAME": "second-worker"}, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as api:
                yield Limited(api, script, f"http://127.0.0.1:{server.server_port}")
        finally:
            stop_process(worker)
            stop_process(dev)
            server.shutdown()
            server.server_close()


def http_node(url: str, **policies: Any) -> dict[str, Any]:
    return {"id": "call", "type": "http", "config": {"url": url, **policies}}


def register(api: httpx.Client, node: dict[str, Any]) -> str:
    workflow_id = unique("limits")
    response = api.post("/api/workflows", json={"id": workflow_id, "name": workflow_id, "nodes": [node]})
    assert response.status_code == 201, response.text
    return workflow_id


def execute_many(api: httpx.Client, workflow_id: str, count: int) -> list[str]:
    return [execute(api, workflow_id, {}) for _ in range(count)]


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def breaker(api: httpx.Client, name: str) -> dict[str, Any]:
    items = api.get("/api/circuit-breakers").json()["items"]
    found: dict[str, Any] = next((b for b in items if b["name"] == name), {"state": "not there yet"})
    return found


def history(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    return events


def test_a_rate_limit_of_20_per_second_holds_within_10_percent_over_10_s(limited: Limited) -> None:
    api, script = limited.api, limited.script
    path = f"/rate/{unique('r')}"
    workflow_id = register(api, http_node(limited.target + path, rateLimit={"max": 20, "perMs": 1000}))
    count = 240
    ids = execute_many(api, workflow_id, count)
    wait_for(lambda: len(script.on(path)) >= count, 40, "every call")
    times = sorted(c.started for c in script.on(path))
    assert len(times) == count  # none dropped, none run twice
    # The bucket lets its first 20 through at once (its burst), then 20 a second: every 10 s window after the
    # burst holds at most 10 % over 200 calls, and the whole run took as long as that rate asks.
    steady = times[20:]
    most = max(sum(1 for t in steady[i:] if t < start + 10.0) for i, start in enumerate(steady))
    assert most <= 220, most
    assert times[-1] - times[0] >= (count - 20) / 20 * 0.9
    finals = [wait_final(api, eid) for eid in ids]
    assert all(f["status"] == "completed" and f["nodes"]["call"]["attempts"] == 1 for f in finals)
    buckets = {b["name"]: b for b in api.get("/api/rate-limits").json()["items"]}
    bucket = buckets[f"node:{workflow_id}/call"]
    assert (bucket["max"], bucket["perMs"], bucket["reserved"]) == (20, 1000, 0)
    assert 0 <= bucket["available"] <= 20
    metrics = api.get("/metrics").text
    assert f'spane_throttled_nodes_total{{limit="node:{workflow_id}/call",reason="rate-limit"}}' in metrics


def test_a_breaker_opens_defers_half_opens_with_one_probe_and_closes(limited: Limited) -> None:
    api, script = limited.api, limited.script
    script.failing, script.delay_s = True, 0.2
    path = f"/fail/{unique('b')}"
    retry = {"maxAttempts": 10, "backoff": {"type": "fixed", "delay": 50}}
    policy = {"failureThreshold": 3, "successThreshold": 2, "timeoutMs": 2000}
    target = limited.target.replace("127.0.0.1", "127.0.0.2")
    workflow_id = register(api, http_node(target + path, retryPolicy=retry, circuitBreaker=policy))
    name = "http:127.0.0.2"
    ids = execute_many(api, workflow_id, 6)
    wait_for(lambda: breaker(api, name)["state"] == "open", 20, "the breaker to open")
    opened = breaker(api, name)
    assert opened["failures"] >= 3 and opened["openUntil"] is not None
    script.failing = False
    open_until = datetime.fromisoformat(opened["openUntil"]).timestamp()
    finals = [wait_final(api, eid, timeout=40) for eid in ids]
    assert all(f["status"] == "completed" for f in finals)
    assert breaker(api, name)["state"] == "closed"

    calls = script.on(path)
    # Nothing ran while it was open (a call let through just before it opened may start a moment later).
    assert not [c for c in calls if open_until - 1.7 <= c.started < open_until - 0.05]
    # Half-open: the first two calls after it are probes, one at a time (the second after the first ended).
    probes = sorted((c for c in calls if c.started >= open_until - 0.05), key=lambda c: c.started)[:2]
    assert len(probes) == 2 and probes[1].started >= probes[0].ended
    # A deferred node spent no attempt: its attempts are the calls it made.
    for execution_id, final in zip(ids, finals, strict=True):
        made = [c for c in calls if c.key.startswith(f"{execution_id}:")]
        assert final["nodes"]["call"]["attempts"] == len(made)
    waited = [
        e for eid in ids for e in history(api, eid) if e["type"] == "node.waiting" and e["reason"] == "circuit-breaker"
    ]
    assert waited
    metrics = api.get("/metrics").text
    for state in ("open", "half_open", "closed"):
        assert f'spane_circuit_breaker_transitions_total{{breaker="{name}",state="{state}"}}' in metrics
    assert f'spane_circuit_breaker_state{{name="{name}",state="closed"}} 1.0' in metrics
    script.delay_s = 0.0


def test_a_reset_closes_an_open_breaker_and_the_deferred_nodes_run_at_once(limited: Limited) -> None:
    api, script = limited.api, limited.script
    script.failing = True
    path = f"/fail/{unique('reset')}"
    retry = {"maxAttempts": 5, "backoff": {"type": "fixed", "delay": 50}}
    policy = {"failureThreshold": 1, "timeoutMs": 600_000}
    target = limited.target.replace("127.0.0.1", "127.0.0.3")
    workflow_id = register(api, http_node(target + path, retryPolicy=retry, circuitBreaker=policy))
    name = "http:127.0.0.3"
    (execution_id,) = execute_many(api, workflow_id, 1)
    wait_for(lambda: breaker(api, name)["state"] == "open", 20, "the breaker to open")
    wait_for(
        lambda: any(e["type"] == "node.waiting" for e in history(api, execution_id)), 20, "the node to be deferred"
    )
    script.failing = False
    assert api.post("/api/circuit-breakers/nope/reset").status_code == 404
    response = api.post(f"/api/circuit-breakers/{name}/reset")
    assert response.status_code == 202 and response.json() == {"name": name, "state": "closed"}
    final = wait_final(api, execution_id, timeout=20)  # far sooner than the breaker's ten minutes
    assert final["status"] == "completed" and final["nodes"]["call"]["attempts"] == 2
    assert breaker(api, name)["state"] == "closed"


@pytest.mark.parametrize(
    ("policies", "path"),
    [
        ({"rateLimit": {"max": 0, "perMs": 1000}}, "nodes[0].config.rateLimit.max"),
        ({"rateLimit": {"max": 5, "perMs": -1}}, "nodes[0].config.rateLimit.perMs"),
        ({"circuitBreaker": {"failureThreshold": 0}}, "nodes[0].config.circuitBreaker.failureThreshold"),
        ({"circuitBreaker": {"timeoutMs": -5}}, "nodes[0].config.circuitBreaker.timeoutMs"),
    ],
)
def test_bad_thresholds_and_rates_are_422(limited: Limited, policies: dict[str, Any], path: str) -> None:
    node = http_node(limited.target, **policies)
    response = limited.api.post("/api/workflows", json={"id": unique("bad"), "name": "bad", "nodes": [node]})
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == [path]
