"""The http node fills in its templates from its input and the worker's secrets, and keeps the secrets out of its
errors (HTTP through a mock transport)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from spane_core.errors import HttpClientError, NonRetryableError
from spane_core.secrets import MissingSecret, Secrets
from spane_worker.executors.http import http_executor
from spane_worker.executors.templating import hide_secrets_in_span

from .test_executors import Handler, ctx

TOKEN = "tok/en+1 2"  # characters a URL encodes


async def call(config: dict[str, Any], handler: Handler, data: Any = None, secrets: Secrets | None = None) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        known = secrets if secrets is not None else Secrets(environ={"SPANE_SECRET_TOKEN": TOKEN})
        return await http_executor(client, known)(ctx(config, data, "http"))


def recording(seen: list[httpx.Request], status: int = 200) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"ok": True})

    return handler


async def test_url_headers_query_and_body_are_filled_in_from_the_input() -> None:
    seen: list[httpx.Request] = []
    config = {
        "url": "https://api.test/users/{{ user.id }}/orders",
        "method": "POST",
        "headers": {"X-Tenant": "t-{{ upper(user.tenant) }}", "X-Count": "{{ length(items) }}"},
        "query": {"tag": "{{ tags }}", "note": "n={{ user }}"},
        "body": {"ids": "{{ items[*].id }}", "first": "{{ items[0] }}", "text": "{{ user.name }}!", "n": 3},
    }
    data = {"user": {"id": 7, "tenant": "acme", "name": "Ada"}, "items": [{"id": 1}, {"id": 2}], "tags": ["a", "b"]}
    await call(config, recording(seen), data)
    (request,) = seen
    assert request.url.path == "/users/7/orders"
    assert request.headers["x-tenant"] == "t-ACME" and request.headers["x-count"] == "2"
    # A lone placeholder keeps its value's type (a list is a repeated parameter); among text, objects are JSON.
    assert request.url.params.get_list("tag") == ["a", "b"]
    assert request.url.params["note"] == 'n={"id":7,"tenant":"acme","name":"Ada"}'
    assert json.loads(request.content) == {"ids": [1, 2], "first": {"id": 1}, "text": "Ada!", "n": 3}


async def test_null_is_nothing_in_text_and_the_whole_url_may_come_from_the_input() -> None:
    seen: list[httpx.Request] = []
    await call(
        {"url": "{{ base }}/x", "headers": {"X-Opt": "[{{ missing }}]"}}, recording(seen), {"base": "http://h.test"}
    )
    assert str(seen[0].url) == "http://h.test/x" and seen[0].headers["x-opt"] == "[]"


async def test_a_url_that_is_not_http_once_filled_in_fails_the_node_for_good() -> None:
    with pytest.raises(NonRetryableError, match="absolute http"):
        await call({"url": "{{ base }}/x"}, recording([]), {"base": "file:///etc"})


async def test_a_secret_from_the_environment_or_the_secrets_dir_is_sent(tmp_path: Path) -> None:
    (tmp_path / "FROM_FILE").write_text("file-secret\n")
    secrets = Secrets(str(tmp_path), environ={"SPANE_SECRET_FROM_ENV": "env-secret"})
    seen: list[httpx.Request] = []
    headers = {"Authorization": "Bearer {{ $secrets.FROM_ENV }}", "X-Other": "{{ $secrets.FROM_FILE }}"}
    await call({"url": "https://api.test/", "headers": headers}, recording(seen), secrets=secrets)
    assert seen[0].headers["authorization"] == "Bearer env-secret"
    assert seen[0].headers["x-other"] == "file-secret"  # the file's trailing newline dropped


async def test_a_missing_secret_fails_the_node_for_good_naming_it() -> None:
    with pytest.raises(MissingSecret, match="the secret NOPE is not set on this worker") as raised:
        await call({"url": "https://api.test/", "headers": {"K": "{{ $secrets.NOPE }}"}}, recording([]))
    assert isinstance(raised.value, NonRetryableError)


async def test_an_empty_secret_fails_the_node_for_good_instead_of_sending_nothing(tmp_path: Path) -> None:
    # A secrets volume whose file is empty (a Secret created without its value), or SPANE_SECRET_X= in a compose file:
    # the request went out with "Authorization: Bearer " and failed at the other end, or worse, did not.
    (tmp_path / "EMPTY_FILE").write_text("\n")
    secrets = Secrets(str(tmp_path), environ={"SPANE_SECRET_EMPTY_ENV": ""})
    seen: list[httpx.Request] = []
    for name in ("EMPTY_FILE", "EMPTY_ENV"):
        with pytest.raises(MissingSecret, match=f"the secret {name} is empty"):
            config = {"url": "https://api.test/", "headers": {"K": f"Bearer {{{{ $secrets.{name} }}}}"}}
            await call(config, recording(seen), secrets=secrets)
    assert seen == []


async def test_a_secret_file_that_is_not_text_fails_the_node_for_good_naming_it(tmp_path: Path) -> None:
    # A binary file (a keystore mounted by mistake) raised UnicodeDecodeError: an unknown error, tried again.
    (tmp_path / "BINARY").write_bytes(b"\xff\xfe\x00k")
    with pytest.raises(MissingSecret, match=r"the file BINARY in .* is not UTF-8 text"):
        config = {"url": "https://api.test/", "headers": {"K": "{{ $secrets.BINARY }}"}}
        await call(config, recording([]), secrets=Secrets(str(tmp_path), environ={}))


async def test_a_secret_never_shows_in_the_error_of_a_failed_request() -> None:
    config = {"url": "https://api.test/x", "query": {"key": "{{ $secrets.TOKEN }}"}}
    with pytest.raises(HttpClientError) as raised:
        await call(config, recording([], status=403))
    # The message (which goes into the execution's log) names the request, its secret replaced.
    assert str(raised.value) == "HTTP 403 from GET https://api.test/x?key=***"

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url} with {TOKEN}", request=request)

    with pytest.raises(httpx.ConnectError) as network:
        await call(config, refused)
    assert TOKEN not in str(network.value) and "tok%2Fen" not in str(network.value)
    assert str(network.value) == "cannot reach https://api.test/x?key=*** with ***"


async def test_a_traced_request_records_its_url_as_errors_show_it_and_no_secret() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = {
        "url": "https://api.test/{{ $secrets.TOKEN }}/x?user={{ user }}",
        "query": {"key": "{{ $secrets.TOKEN }}"},
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(recording([]))) as client:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider, request_hook=hide_secrets_in_span)
        secrets = Secrets(environ={"SPANE_SECRET_TOKEN": TOKEN})
        await http_executor(client, secrets)(ctx(config, {"user": "ada"}, "http"))
        literal = {"url": "https://me:pw@api.test/plain?api_key=written-in-the-definition"}
        await http_executor(client, secrets)(ctx(literal, None, "http"))
    with_secret, plain = exporter.get_finished_spans()
    for span, expected in (
        (with_secret, "https://api.test/***/x?user=***&key=***"),
        (plain, "https://api.test/plain?api_key=***"),
    ):
        urls = {key: value for key, value in (span.attributes or {}).items() if "url" in key}
        assert urls and all(value == expected for value in urls.values()), urls
    shown = " ".join(str(v) for span in (with_secret, plain) for v in (span.attributes or {}).values())
    assert "tok" not in shown and "written-in-the-definition" not in shown and "pw@" not in shown


async def test_query_adds_to_the_url_s_own_query() -> None:
    seen: list[httpx.Request] = []
    await call({"url": "https://api.test/search?q=shoes&page=1"}, recording(seen))
    await call({"url": "https://api.test/search?q=shoes&page=1", "query": {"page": 2, "size": 10}}, recording(seen))
    assert [str(r.url) for r in seen] == [
        "https://api.test/search?q=shoes&page=1",
        "https://api.test/search?q=shoes&page=2&size=10",
    ]


async def test_the_http_client_s_request_lines_are_not_logged() -> None:
    """httpx logs each request's whole URL at INFO (a key in its query with it): a worker's http node quiets it."""
    httpx_log = logging.getLogger("httpx")
    httpx_log.setLevel(logging.NOTSET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logging.getLogger(), "level", logging.INFO)
        assert httpx_log.isEnabledFor(logging.INFO)
        await call({"url": "https://api.test/"}, recording([]))
        assert not httpx_log.isEnabledFor(logging.INFO) and httpx_log.isEnabledFor(logging.WARNING)


async def test_an_object_in_the_query_is_sent_as_json() -> None:
    seen: list[httpx.Request] = []
    config = {"url": "https://api.test/s", "query": {"filter": "{{ filter }}", "ids": [[1, 2], 3]}}
    await call(config, recording(seen), {"filter": {"status": "paid"}})
    assert seen[0].url.params["filter"] == '{"status":"paid"}'
    assert seen[0].url.params.get_list("ids") == ["[1,2]", "3"]


async def test_a_header_value_with_a_line_break_fails_the_node_for_good() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(NonRetryableError, match="line break"):
        await call(
            {"url": "https://api.test/", "headers": {"X-Name": "{{ name }}"}},
            recording(seen),
            {"name": "a\r\nX-Admin: 1"},
        )
    assert seen == []


async def test_a_header_value_that_is_not_ascii_fails_the_node_for_good_naming_the_header() -> None:
    # httpx raised a bare UnicodeEncodeError, which the node retried as if it could pass the next time.
    seen: list[httpx.Request] = []
    with pytest.raises(NonRetryableError, match=r"X-Name.*not ASCII") as raised:
        await call(
            {"url": "https://api.test/", "headers": {"X-Name": "{{ name }} {{ $secrets.TOKEN }}"}},
            recording(seen),
            {"name": "Zoë 日本"},
        )
    assert seen == [] and TOKEN not in str(raised.value)


@pytest.mark.parametrize("hook", ["https://hooks.test/T0/SECRET\n", "hooks.test/T0/SECRET\\'\""])
async def test_a_url_that_is_a_secret_stays_hidden_when_it_is_not_a_valid_url(hook: str) -> None:
    # The whole URL a secret (a chat webhook's), its file with a blank line too much: the error wrote the URL with
    # repr(), which escapes the newline, so the secret no longer matched the value to hide and was shown.
    secrets = Secrets(environ={"SPANE_SECRET_HOOK": hook})
    with pytest.raises(NonRetryableError) as raised:
        await call({"url": "{{ $secrets.HOOK }}"}, recording([]), None, secrets)
    assert "SECRET" not in str(raised.value) and "***" in str(raised.value)


async def test_a_stored_header_name_that_is_not_a_token_fails_the_node_for_good() -> None:
    # Registration refuses it now; a definition stored before is not sent (h11 refused it, and every try again).
    with pytest.raises(NonRetryableError, match="not a valid header name"):
        await call({"url": "https://api.test/", "headers": {"X Bad": "1"}}, recording([]))


async def test_a_header_value_is_sent_without_surrounding_blanks_and_a_control_character_fails_it_for_good() -> None:
    # h11 refused "Bearer tok " (a secret with a trailing blank) as a network error: every try again, and its
    # message, the whole value with the secret in it, went into the trace of the request.
    seen: list[httpx.Request] = []
    secrets = Secrets(environ={"SPANE_SECRET_PADDED": " tok \t"})
    await call(
        {"url": "https://api.test/", "headers": {"A": "Bearer {{ $secrets.PADDED }}"}}, recording(seen), {}, secrets
    )
    assert seen[0].headers["a"] == "Bearer  tok"
    with pytest.raises(NonRetryableError, match=r"X-Name.*control character") as raised:
        config = {"url": "https://api.test/", "headers": {"X-Name": "{{ $secrets.TOKEN }}{{ name }}"}}
        await call(config, recording(seen), {"name": "a\x00b"})
    assert TOKEN not in str(raised.value) and len(seen) == 1
