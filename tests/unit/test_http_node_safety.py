"""The http node keeps secrets out of what it records and reads no more of an answer than it may (mock transport)."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from spane_core.errors import HttpCallTooSlow, HttpClientError, HttpResponseTooLarge, HttpStatusError
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.sdk import NodeContext, NonRetryableError
from spane_core.secrets import Secrets
from spane_worker.executors.http import HttpLimits, http_executor
from spane_worker.executors.http_redact import RedactUrls, shown_url
from spane_worker.executors.templating import Renderer

Handler = Callable[[httpx.Request], httpx.Response]
SECRET_URL = "https://ada:pa55word@api.test/v1/items?api_key=K3Y&page=2"


def ctx(config: dict[str, Any], data: Any = None) -> NodeContext:
    return NodeContext(
        execution_id=ExecutionId("e1"), workflow_id=WorkflowId("wf"), node_id=NodeId("n"), node_type="http",
        attempt=1, input=data, config=config, idempotency_key="e1:n:1",
    )  # fmt: skip


async def call_http(config: dict[str, Any], handler: Handler, max_response_bytes: int = 1000) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await http_executor(client, limits=HttpLimits(max_response_bytes=max_response_bytes))(ctx(config))


def test_a_shown_url_has_no_credentials_and_no_query_values() -> None:
    assert shown_url(SECRET_URL) == "https://api.test/v1/items?api_key=***&page=***"
    assert shown_url("http://api.test/x") == "http://api.test/x"


@pytest.mark.parametrize(("status", "error"), [(401, HttpClientError), (503, HttpStatusError)])
async def test_a_failed_call_names_the_url_without_its_secrets(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        await call_http({"url": SECRET_URL}, lambda r: httpx.Response(status))
    message = str(info.value)
    assert "api.test/v1/items" in message
    assert "pa55word" not in message and "ada" not in message and "K3Y" not in message


async def test_the_urls_own_query_is_kept_and_the_configured_one_added() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200)

    await call_http({"url": "http://api.test/x?a=1"}, handler)
    await call_http({"url": "http://api.test/x?a=1", "query": {"b": 2}}, handler)
    assert [str(u) for u in seen] == ["http://api.test/x?a=1", "http://api.test/x?a=1&b=2"]


async def streamed(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 100):
        yield b"y" * 100


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(200, content=b"y" * 1001),  # with a content-length
        lambda r: httpx.Response(200, content=streamed(100_000)),  # chunked: no length said in advance
        lambda r: httpx.Response(200, content=gzip.compress(b"y" * 100_000), headers={"Content-Encoding": "gzip"}),
    ],
    ids=["declared", "chunked", "gzip"],
)
async def test_an_answer_over_the_limit_fails_the_node_for_good(answer: Handler) -> None:
    with pytest.raises(HttpResponseTooLarge, match="larger than 1000 bytes") as info:
        await call_http({"url": SECRET_URL}, answer)
    assert isinstance(info.value, NonRetryableError)
    assert "pa55word" not in str(info.value)


async def test_an_answer_within_the_limit_is_read_whole() -> None:
    out = await call_http({"url": "http://api.test/x"}, lambda r: httpx.Response(200, json={"a": "é" * 10}))
    assert out["body"] == {"a": "é" * 10}
    out = await call_http({"url": "http://api.test/x"}, lambda r: httpx.Response(200, content=streamed(1000)))
    assert out["body"] == "y" * 1000


def test_httpx_request_log_lines_show_urls_without_secrets() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
        ("GET", httpx.URL(SECRET_URL), "HTTP/1.1", 200, "OK"), None,
    )  # fmt: skip
    assert RedactUrls().filter(record)
    assert record.getMessage() == 'HTTP Request: GET https://api.test/v1/items?api_key=***&page=*** "HTTP/1.1 200 OK"'


async def test_a_redirect_to_another_origin_leaves_the_configured_credentials_behind() -> None:
    seen: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = request.headers
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": "/same"})  # the same origin: everything goes on
        if request.url.path == "/same":
            return httpx.Response(307, headers={"Location": "http://elsewhere.test/landing"})
        return httpx.Response(200, json={})

    config = {
        "url": "http://api.test/start",
        "headers": {
            "X-Partner": "{{ $secrets.PARTNER }}",  # a secret's value under an innocent name
            "X-Api-Key": "literal-k3y",
            "Cookie": "session=abc",
            "Accept": "application/json",
            "Idempotency-Key": "mine",
        },
    }
    secrets = Secrets(environ={"SPANE_SECRET_PARTNER": "s3cr3t-value"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        await http_executor(client, secrets)(ctx(config))
    credentials = {"x-partner": "s3cr3t-value", "x-api-key": "literal-k3y"}
    for url in ("http://api.test/start", "http://api.test/same"):
        assert {k: seen[url].get(k) for k in credentials} == credentials, url
    landing = seen["http://elsewhere.test/landing"]
    assert not any(name in landing for name in [*credentials, "cookie"]), landing
    assert landing["accept"] == "application/json" and landing["idempotency-key"] == "mine"


async def test_a_secret_with_blanks_around_it_is_still_left_behind_by_a_redirect_elsewhere() -> None:
    # A header's value is sent without the blanks around it; the secret must still be recognised in it.
    seen: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers
        if request.url.host == "api.test":
            return httpx.Response(302, headers={"Location": "http://elsewhere.test/landing"})
        return httpx.Response(200, json={})

    config = {"url": "http://api.test/start", "headers": {"X-Partner": "{{ $secrets.PARTNER }}"}}
    secrets = Secrets(environ={"SPANE_SECRET_PARTNER": "s3cr3t-value \t"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        await http_executor(client, secrets)(ctx(config))
    assert seen["api.test"]["x-partner"] == "s3cr3t-value"
    assert "x-partner" not in seen["elsewhere.test"]


@pytest.mark.parametrize(
    ("url", "value", "sent"),
    [
        ("https://api.test/users/{{ v }}/notes", "7", "https://api.test/users/7/notes"),
        ("https://api.test/users/{{ v }}/notes", "../admin", "https://api.test/users/..%2Fadmin/notes"),
        ("https://api.test/users/{{ v }}/notes", "1?role=admin#", "https://api.test/users/1%3Frole%3Dadmin%23/notes"),
        ("https://api.test/users/{{ v }}/notes", "..", "https://api.test/users/%2E%2E/notes"),
        ("https://api.test/search?q={{ v }}&page=1", "a&page=99", "https://api.test/search?q=a%26page%3D99&page=1"),
        ("https://{{ v }}.api.test/x", "evil.test/#", "https://evil.test%2F%23.api.test/x"),
        ("https://{{ v }}/x", "h.test:8443", "https://h.test:8443/x"),  # a host and port, as the definition meant
        ("{{ v }}/x", "https://h.test", "https://h.test/x"),  # the definition lets the input choose the URL
    ],
)
def test_a_value_in_the_url_cannot_steer_the_request_elsewhere(url: str, value: str, sent: str) -> None:
    assert Renderer({"v": value}, Secrets(environ={})).url(url) == sent


async def test_the_path_a_node_requests_keeps_an_inputs_value_in_its_segment() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200)

    config = {"url": "https://api.test/users/{{ id }}/notes", "headers": {"Authorization": "Bearer t"}}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await http_executor(client)(ctx(config, {"id": "../../admin/delete"}))
    assert seen[0].raw_path == b"/users/..%2F..%2Fadmin%2Fdelete/notes"


async def test_an_answer_that_trickles_in_is_given_up_at_the_call_deadline_and_retried() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:  # a byte now and then: each wait is short, the whole never ends
            yield b"y"
            await asyncio.sleep(0.01)

    limits = HttpLimits(max_call_s=0.2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=trickle()))) as c:
        with pytest.raises(HttpCallTooSlow, match=r"took longer than 0\.2 s") as info:
            await http_executor(c, limits=limits)(ctx({"url": SECRET_URL}))
    assert not isinstance(info.value, NonRetryableError)
    assert "pa55word" not in str(info.value)
