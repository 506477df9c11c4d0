"""Security over the running system: what an http node records and logs of a URL's secrets, how much of an answer
it reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from .conftest import System
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e

PASSWORD = "pa55-" + unique("word")
KEY = "k3y-" + unique("query")
BIG = 11 * 1024 * 1024  # over the default SPANE_HTTP_MAX_RESPONSE_BYTES (10 MiB)


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/big"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()  # no length: the node cannot know the size before reading
            for _ in range(BIG // 65536 + 1):
                try:
                    self.wfile.write(b"y" * 65536)
                except OSError:  # the node stopped reading: what it should do
                    return
        else:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_http(api: httpx.Client, url: str) -> dict[str, object]:
    workflow_id = unique("sec")
    node = {"id": "call", "type": "http", "config": {"url": url}, "retryPolicy": {"maxAttempts": 1}}
    post_workflow(api, {"id": workflow_id, "name": "security", "nodes": [node]})
    return wait_final(api, execute(api, workflow_id, {}))


def test_a_failed_call_records_and_logs_its_url_without_credentials_or_query_values(
    api: httpx.Client, system: System, origin: str
) -> None:
    final = run_http(api, f"http://ada:{PASSWORD}@{origin}/hook?api_key={KEY}")
    assert final["status"] == "failed"
    history = api.get(f"/api/executions/{final['executionId']}/history").text
    for seen in (str(final), history):
        assert "HTTP 401" in seen and f"{origin}/hook?api_key=***" in seen
        assert PASSWORD not in seen and KEY not in seen
    log = system.log.read_text(errors="replace")
    assert f"{origin}/hook" in log  # the worker logged the failure (and httpx its request) ...
    assert PASSWORD not in log and KEY not in log  # ... without the secrets


def test_an_answer_over_the_limit_fails_the_node_for_good(api: httpx.Client, origin: str) -> None:
    final = run_http(api, f"http://{origin}/big")
    assert final["status"] == "failed"
    node = final["nodes"]["call"]  # type: ignore[index]
    assert node["error"]["type"] == "HttpResponseTooLarge" and node["attempts"] == 1, node
