"""The built-in node types and the SDK's reading of executor results, without I/O (HTTP through a mock transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from spane_core.errors import HttpClientError, HttpStatusError
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.sdk import ExecutorRegistry, NodeContext, NodeResult, NonRetryableError, node_result
from spane_worker.executors import builtin_executors
from spane_worker.executors.condition import condition
from spane_worker.executors.http import http_executor
from spane_worker.executors.transform import transform


def ctx(config: dict[str, Any], data: Any = None, node_type: str = "transform") -> NodeContext:
    return NodeContext(
        execution_id=ExecutionId("e1"),
        workflow_id=WorkflowId("wf"),
        node_id=NodeId("n"),
        node_type=node_type,
        attempt=1,
        input=data,
        config=config,
        idempotency_key="e1:n:1",
    )


# -- transform ----------------------------------------------------------------------------------------------


async def test_transform_with_empty_config_passes_the_input_through() -> None:
    assert await transform(ctx({}, {"a": 1})) == {"a": 1}


async def test_transform_evaluates_the_expression_on_the_input() -> None:
    data = {"user": {"name": "Ada", "tags": ["x", "y"]}}
    assert await transform(ctx({"expression": "{name: user.name, n: length(user.tags)}"}, data)) == {
        "name": "Ada",
        "n": 2,
    }


async def test_transform_has_string_functions_beyond_jmespath() -> None:
    config = {"expression": "{u: upper(name), l: lower(name), t: trim(pad), parts: split(csv, ',')}"}
    data = {"name": "Ada", "pad": "  x ", "csv": "a,b"}
    assert await transform(ctx(config, data)) == {"u": "ADA", "l": "ada", "t": "x", "parts": ["a", "b"]}


async def test_transform_merges_set_into_the_result_and_set_wins() -> None:
    result = await transform(ctx({"expression": "user", "set": {"vip": True, "name": "B"}}, {"user": {"name": "A"}}))
    assert result == {"name": "B", "vip": True}


async def test_transform_set_on_a_null_result_starts_from_an_empty_object() -> None:
    assert await transform(ctx({"set": {"a": 1}}, None)) == {"a": 1}


async def test_transform_set_on_a_list_is_a_non_retryable_error() -> None:
    with pytest.raises(NonRetryableError, match="merges into an object"):
        await transform(ctx({"set": {"a": 1}}, [1, 2]))


async def test_transform_with_a_bad_expression_is_a_non_retryable_error() -> None:
    with pytest.raises(NonRetryableError, match="invalid JMESPath"):
        await transform(ctx({"expression": "a.["}, {}))


# -- condition ----------------------------------------------------------------------------------------------


async def test_condition_true_chooses_the_true_branch_and_outputs_the_input() -> None:
    config = {"expression": "amount > `100`", "trueBranch": "big", "falseBranch": ["small", "log"]}
    assert await condition(ctx(config, {"amount": 150})) == NodeResult({"amount": 150}, ["big"])
    assert await condition(ctx(config, {"amount": 5})) == NodeResult({"amount": 5}, ["small", "log"])


async def test_condition_without_the_chosen_branch_runs_no_child() -> None:
    assert await condition(ctx({"expression": "ok", "trueBranch": "a"}, {"ok": False})) == NodeResult({"ok": False}, [])


@pytest.mark.parametrize(
    ("value", "truth"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), ("x", True), ([0], True)],
)
async def test_condition_truth_follows_jmespath(value: Any, truth: bool) -> None:
    result = await condition(ctx({"expression": "v", "trueBranch": "t", "falseBranch": "f"}, {"v": value}))
    assert result.next_nodes == (["t"] if truth else ["f"])


# -- http ---------------------------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


async def call_http(config: dict[str, Any], handler: Handler, data: Any = None) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await http_executor(client)(ctx(config, data, "http"))


async def test_http_get_with_query_and_headers_returns_status_headers_and_parsed_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"X-Id": "7"})

    config = {"url": "http://api.test/items", "query": {"page": 2, "all": True}, "headers": {"X-Key": "k"}}
    out = await call_http(config, handler)
    assert out["status"] == 200
    assert out["body"] == {"ok": True}
    assert out["headers"]["x-id"] == "7"
    assert seen[0].method == "GET"
    assert str(seen[0].url) == "http://api.test/items?page=2&all=true"
    assert seen[0].headers["x-key"] == "k"
    assert seen[0].content == b""


async def test_http_post_sends_the_input_as_json_by_default() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, text=request.content.decode())

    out = await call_http({"url": "http://api.test/x", "method": "post"}, handler, {"a": [1, 2]})
    assert out["status"] == 201
    assert json.loads(out["body"]) == {"a": [1, 2]}  # a text/plain answer stays text


async def test_http_explicit_body_wins_over_the_input() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=json.loads(request.content))

    out = await call_http({"url": "http://api.test/x", "method": "PUT", "body": {"b": 1}}, handler, {"a": 1})
    assert out["body"] == {"b": 1}


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_http_4xx_is_not_retried(status: int) -> None:
    with pytest.raises(HttpClientError, match=f"HTTP {status}") as info:
        await call_http({"url": "http://api.test/x"}, lambda r: httpx.Response(status))
    assert isinstance(info.value, NonRetryableError)


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_http_5xx_408_429_are_retryable(status: int) -> None:
    with pytest.raises(HttpStatusError) as info:
        await call_http({"url": "http://api.test/x"}, lambda r: httpx.Response(status))
    assert not isinstance(info.value, NonRetryableError)


async def test_http_network_error_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(httpx.ConnectError) as info:
        await call_http({"url": "http://api.test/x"}, handler)
    assert not isinstance(info.value, NonRetryableError)


# -- the registry ----------------------------------------------------------------------------------------------


async def test_builtins_are_registered_with_their_config_schemas_and_engine_types_are_not() -> None:
    async with httpx.AsyncClient() as client:
        registry = builtin_executors(client)
    # delay and sub-workflow nodes are carried out by the engine itself, never by a worker's executor.
    assert registry.names() == ["condition", "http", "transform"]
    assert all(spec is not None for spec in registry.config_schemas().values())


def test_registry_register_get_and_replace() -> None:
    registry = ExecutorRegistry()

    async def one(c: NodeContext) -> int:
        return 1

    async def two(c: NodeContext) -> int:
        return 2

    registry.register("x", one)
    registry.register("x", two)
    assert registry.get("x") is two
    assert registry.get("y") is None
    assert registry.config_schemas() == {"x": None}
    assert "x" in registry and len(registry) == 1


# -- results ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1}, NodeResult({"a": 1})),
        (NodeResult(5, ["b"]), NodeResult(5, ["b"])),
        ({"a": 1, "nextNodes": ["b", "c"]}, NodeResult({"a": 1}, ["b", "c"])),
        ({"a": 1, "nextNodes": "b"}, NodeResult({"a": 1}, ["b"])),
        ({"success": True, "data": {"x": 1}, "nextNodes": ["b"]}, NodeResult({"x": 1}, ["b"])),
        ({"a": 1, "nextNodes": None}, NodeResult({"a": 1})),
    ],
)
def test_node_result_reads_next_nodes(value: Any, expected: NodeResult) -> None:
    assert node_result(value) == expected


def test_node_result_of_a_failed_typescript_result_is_non_retryable() -> None:
    with pytest.raises(NonRetryableError, match="boom"):
        node_result({"success": False, "error": "boom", "nextNodes": []})


def test_node_result_rejects_bad_next_nodes() -> None:
    with pytest.raises(NonRetryableError):
        node_result({"nextNodes": [1]})
