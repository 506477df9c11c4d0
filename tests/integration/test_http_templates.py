"""An http node's templates filled in by a running worker from the node's input and the worker's secrets, and the
secret kept out of the execution's log and the worker's own log when the request fails."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from spane_core.events import NodeFailed
from spane_core.state import ExecutionStatus

from tests.http_support import QuietHandler, serving

from .worker_support import engine, running

pytestmark = pytest.mark.integration

SECRET = "sk_live_0123456789"


@contextlib.contextmanager
def api_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A local API: ``/users/...`` answers 200 with what it got; anything else 401. Keeps each request."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200 if self.path.startswith("/users/") else 401)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

    with serving(Handler) as url:
        yield url, seen


async def test_templates_are_filled_in_and_a_secret_is_sent_but_never_recorded(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SPANE_SECRET_CRM_TOKEN", SECRET)
    call = {
        "method": "POST",
        "headers": {"Authorization": "Bearer {{ $secrets.CRM_TOKEN }}"},
        "body": {"email": "{{ lower(email) }}", "tags": "{{ tags }}"},
    }
    with api_server() as (base, seen):
        async with engine(redis_url) as e, running(e):
            wf = await e.register(
                "tpl-ok", [{"id": "call", "type": "http", "config": {**call, "url": base + "/users/{{ id }}"}}]
            )
            denied = {**call, "url": base + "/admin?token={{ $secrets.CRM_TOKEN }}", "retryPolicy": {"maxAttempts": 1}}
            bad = await e.register("tpl-denied", [{"id": "call", "type": "http", "config": denied}])
            (ok_id,) = await e.start(wf, {"id": 42, "email": "Ada@Example.org", "tags": ["vip"]})
            (bad_id,) = await e.start(bad, {"email": "x@y.z", "tags": []})
            with caplog.at_level(logging.INFO):
                ok, failed = await e.wait_finished([ok_id, bad_id])
            log = await e.store.read_log(bad_id)
    assert ok.status == ExecutionStatus.COMPLETED and failed.status == ExecutionStatus.FAILED
    by_path = {path: (headers, body) for path, headers, body in seen}
    headers, body = by_path["/users/42"]
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert body == b'{"email":"ada@example.org","tags":["vip"]}'
    assert by_path[f"/admin?token={SECRET}"]  # the secret reached the server in the query
    # The failure names the request, with the secret hidden, in the execution's log and in the worker's.
    (failure,) = [e.event for e in log if isinstance(e.event, NodeFailed)]
    assert failure.error.message == f"HTTP 401 from POST {base}/admin?token=***"
    assert any("token=***" in record.getMessage() for record in caplog.records)
    assert SECRET not in caplog.text and all(SECRET not in repr(entry) for entry in log)
