"""Validation of raw workflow definitions: what parses, and the exact path and message of each broken rule."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from spane_core.definition import Backoff, RetryPolicy, WorkflowDefinition, build_graph
from spane_core.errors import FieldError, InvalidInput, MalformedInput
from spane_core.ids import NodeId
from spane_core.node_schemas import ConfigContext
from spane_core.validation import BUILTIN_NODE_TYPES, NodeTypeSpec, canonical_json, parse_definition

Raw = dict[str, Any]

API_EXAMPLE: Raw = {
    "id": "order-flow",
    "name": "Order flow",
    "entryNodeId": "start",
    "maxConcurrency": 10,
    "nodes": [
        {"id": "start", "type": "transform", "config": {}, "inputs": [], "outputs": ["a", "b"]},
        {
            "id": "a",
            "type": "http",
            "config": {
                "url": "https://example.com",
                "retryPolicy": {
                    "maxAttempts": 3,
                    "backoff": {"type": "exponential", "delay": 1000},
                    "continueOnFail": False,
                },
            },
            "inputs": ["start"],
            "outputs": ["join"],
        },
        {"id": "b", "type": "delay", "config": {"ms": 500}, "inputs": ["start"], "outputs": ["join"]},
        {"id": "join", "type": "transform", "config": {}, "inputs": ["a", "b"], "outputs": []},
    ],
    "triggers": [
        {"type": "webhook", "config": {"path": "orders", "method": "POST", "secret": "optional-hmac-secret"}},
        {"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "UTC", "input": {}}},
    ],
}


def node(node_id: str, node_type: str = "transform", **fields: Any) -> Raw:
    return {"id": node_id, "type": node_type, **fields}


def workflow(*nodes: Raw, **fields: Any) -> Raw:
    return {"id": "wf", "name": "A workflow", "nodes": list(nodes), **fields}


def single(node_type: str, config: Raw, **fields: Any) -> Raw:
    """A one-node workflow, to test one node's config."""
    return workflow(node("n", node_type, config=config, **fields))


def problems(raw: object, node_types: Mapping[str, NodeTypeSpec | None] = BUILTIN_NODE_TYPES) -> list[FieldError]:
    with pytest.raises(InvalidInput) as caught:
        parse_definition(raw, node_types)
    assert caught.value.errors, "an InvalidInput always says what is wrong"
    return caught.value.errors


def malformed(raw: object) -> list[FieldError]:
    with pytest.raises(MalformedInput) as caught:
        parse_definition(raw, BUILTIN_NODE_TYPES)
    assert caught.value.errors, "a MalformedInput always says what is wrong"
    return caught.value.errors


def only(raw: object, node_types: Mapping[str, NodeTypeSpec | None] = BUILTIN_NODE_TYPES) -> FieldError:
    found = problems(raw, node_types)
    assert len(found) == 1, found
    return found[0]


def parse(raw: object, node_types: Mapping[str, NodeTypeSpec | None] = BUILTIN_NODE_TYPES) -> WorkflowDefinition:
    return parse_definition(raw, node_types)


# The API example and the compatible shapes


def test_the_api_example_parses_with_its_config_retry_policy_moved_to_the_node() -> None:
    definition = parse(API_EXAMPLE)

    assert (definition.id, definition.name, definition.entry_node_id) == ("order-flow", "Order flow", "start")
    assert definition.max_concurrency == 10
    assert [n.id for n in definition.nodes] == ["start", "a", "b", "join"]
    http = definition.nodes[1]
    assert http.config == {"url": "https://example.com"}
    assert http.retry_policy == RetryPolicy(
        max_attempts=3, backoff=Backoff(type="exponential", delay=1000), continue_on_fail=False
    )
    assert definition.nodes[0].retry_policy is None
    assert [(t.type, t.config) for t in definition.triggers] == [
        ("webhook", {"path": "orders", "method": "POST", "secret": "optional-hmac-secret"}),
        ("schedule", {"cron": "*/5 * * * *", "timezone": "UTC", "input": {}}),
    ]
    graph = build_graph(definition)
    assert graph.entries == ("start",)
    assert graph.terminals == ("join",)
    assert graph.parents[NodeId("join")] == ("a", "b")


def test_the_retry_policy_beside_config_is_read_the_same_as_inside_it() -> None:
    retry = {"maxAttempts": 5, "backoff": {"type": "fixed", "delay": 10, "maxDelay": 20, "jitter": 0.5}}
    inside = parse(single("transform", {"retryPolicy": retry}))
    beside = parse(single("transform", {}, retryPolicy=retry))

    expected = RetryPolicy(max_attempts=5, backoff=Backoff(type="fixed", delay=10, max_delay=20, jitter=0.5))
    assert inside.nodes[0].retry_policy == beside.nodes[0].retry_policy == expected
    assert inside.nodes[0].config == beside.nodes[0].config == {}
    assert canonical_json(inside) == canonical_json(beside)


def test_continue_on_fail_beside_the_retry_policy_is_read_into_it() -> None:
    beside = parse(single("transform", {}, continueOnFail=True)).nodes[0]
    in_config = parse(single("transform", {"continueOnFail": True})).nodes[0]
    merged = parse(single("transform", {"retryPolicy": {"maxAttempts": 2}}, continueOnFail=True)).nodes[0]

    assert beside.retry_policy == in_config.retry_policy == RetryPolicy(continue_on_fail=True)
    assert in_config.config == {}
    assert merged.retry_policy == RetryPolicy(max_attempts=2, continue_on_fail=True)


def test_continue_on_fail_that_contradicts_the_retry_policy_is_rejected() -> None:
    problem = only(single("transform", {}, continueOnFail=True, retryPolicy={"continueOnFail": False}))
    message = "continueOnFail differs from the retryPolicy's; give it once"
    assert problem == FieldError("nodes[0].continueOnFail", message)
    assert only(single("transform", {}, continueOnFail="yes")).path == "nodes[0].continueOnFail"


def test_policies_in_config_move_to_the_node_and_timeout_is_copied() -> None:
    config = {
        "url": "http://api.local/x",
        "timeoutMs": 2500,
        "circuitBreaker": {"failureThreshold": 5, "resetTimeoutMs": 30000},
        "rateLimit": {"max": 10, "perMs": 1000},
    }
    parsed = parse(single("http", config)).nodes[0]

    assert parsed.config == {"url": "http://api.local/x", "timeoutMs": 2500}  # the http request timeout
    assert parsed.timeout_ms == 2500
    assert parsed.circuit_breaker == {"failureThreshold": 5, "resetTimeoutMs": 30000}
    assert parsed.rate_limit == {"max": 10, "perMs": 1000}


def test_a_policy_given_twice_with_the_same_value_is_accepted() -> None:
    parsed = parse(single("delay", {"ms": 1, "timeoutMs": 100}, timeoutMs=100))
    assert parsed.nodes[0].timeout_ms == 100


def test_a_policy_given_twice_with_different_values_is_rejected_at_the_node() -> None:
    raw = single("delay", {"ms": 1, "retryPolicy": {"maxAttempts": 2}}, retryPolicy={"maxAttempts": 3})
    problem = only(raw)
    assert problem.path == "nodes[0].retryPolicy"
    assert "both in config and beside it" in problem.message


def test_unknown_fields_are_ignored_at_every_level() -> None:
    raw = copy.deepcopy(API_EXAMPLE)
    raw["createdAt"] = "2024-01-01T00:00:00Z"
    raw["nodes"][0]["position"] = {"x": 1, "y": 2}
    raw["triggers"][0]["enabled"] = True
    assert parse(raw) == parse(API_EXAMPLE)


def test_a_missing_name_defaults_to_the_id_and_missing_lists_to_empty() -> None:
    definition = parse({"id": "solo", "nodes": [{"id": "only", "type": "transform"}]})
    assert definition.name == "solo"
    assert definition.nodes[0].inputs == definition.nodes[0].outputs == []
    assert definition.nodes[0].config == {}
    assert definition.triggers == []


def test_null_counts_as_absent_for_optional_fields() -> None:
    definition = parse(workflow(node("a", config=None, inputs=None), entryNodeId=None, triggers=None))
    assert definition.entry_node_id is None
    assert definition.nodes[0].config == {}


# Workflow fields


@pytest.mark.parametrize("workflow_id", ["a", "order-flow", "v1.2_beta", "0" * 100])
def test_ids_of_lowercase_letters_digits_and_dash_underscore_dot_are_accepted(workflow_id: str) -> None:
    assert parse({**workflow(node("a")), "id": workflow_id}).id == workflow_id


@pytest.mark.parametrize("workflow_id", ["", "Order", "order flow", "a/b", "é", "0" * 101])
def test_other_ids_are_rejected(workflow_id: str) -> None:
    problem = only({**workflow(node("a")), "id": workflow_id})
    assert problem.path == "id"
    assert problem.message.startswith("id must be 1-100 characters of a-z, 0-9")


def test_an_empty_name_is_rejected() -> None:
    assert only(workflow(node("a"), name="  ")) == FieldError("name", "name must not be empty")


def test_max_concurrency_must_be_positive() -> None:
    assert only(workflow(node("a"), maxConcurrency=0)).path == "maxConcurrency"
    assert parse(workflow(node("a"), maxConcurrency=1)).max_concurrency == 1


def test_a_workflow_needs_a_node() -> None:
    assert only(workflow()).path == "nodes"


# Node ids and edges


def test_duplicate_node_ids_name_both_positions() -> None:
    problem = only(workflow(node("a", outputs=["b"]), node("b"), node("a")))
    assert problem.path == "nodes[2].id"
    assert "duplicate node id 'a'" in problem.message
    assert "nodes[0]" in problem.message and "nodes[2]" in problem.message


def test_an_empty_node_id_is_rejected() -> None:
    problem = only(workflow(node("")))
    assert problem == FieldError("nodes[0].id", "node id must not be empty")


def test_an_edge_to_an_unknown_node_names_the_exact_entry() -> None:
    found = problems(workflow(node("a", outputs=["b", "ghost"]), node("b", inputs=["a", "phantom"])))
    assert [(p.path, p.message) for p in found] == [
        ("nodes[0].outputs[1]", "edge to unknown node 'ghost'"),
        ("nodes[1].inputs[1]", "edge to unknown node 'phantom'"),
    ]


def test_a_self_edge_is_rejected_and_not_also_called_a_cycle() -> None:
    found = problems(workflow(node("a", outputs=["b"]), node("b", outputs=["b"])))
    assert found == [FieldError("nodes[1].outputs[0]", "node 'b' has an edge to itself")]


# Cycles, entries, reachability


def test_a_cycle_is_named_as_a_path_from_its_first_declared_node() -> None:
    raw = workflow(
        node("start", outputs=["a"]),
        node("a", outputs=["b"]),
        node("b", outputs=["c"]),
        node("c", outputs=["a"]),
    )
    assert only(raw) == FieldError("nodes[1]", "cycle: a -> b -> c -> a")


def test_the_cycle_is_the_same_whichever_side_declares_the_edges() -> None:
    raw = workflow(
        node("start"),
        node("a", inputs=["start", "c"]),
        node("b", inputs=["a"]),
        node("c", inputs=["b"]),
    )
    assert only(raw) == FieldError("nodes[1]", "cycle: a -> b -> c -> a")


def test_the_named_cycle_is_the_shortest_way_back() -> None:
    raw = workflow(
        node("start", outputs=["a"]),
        node("a", outputs=["long", "b"]),
        node("long", outputs=["longer"]),
        node("longer", outputs=["a"]),
        node("b", outputs=["a"]),
    )
    found = problems(raw)
    assert [p.message for p in found] == ["cycle: a -> b -> a"]


def test_each_separate_cycle_is_reported() -> None:
    raw = workflow(
        node("start", outputs=["a", "x"]),
        node("a", outputs=["b"]),
        node("b", outputs=["a"]),
        node("x", outputs=["y"]),
        node("y", outputs=["x"]),
    )
    assert [(p.path, p.message) for p in problems(raw)] == [
        ("nodes[1]", "cycle: a -> b -> a"),
        ("nodes[3]", "cycle: x -> y -> x"),
    ]


def test_a_graph_where_every_node_has_an_input_has_no_entry() -> None:
    found = problems(workflow(node("a", inputs=["b"]), node("b", inputs=["a"])))
    assert [p.path for p in found] == ["nodes[0]", "nodes"]
    assert found[0].message == "cycle: a -> b -> a"
    assert found[1].message.startswith("no entry node")


def test_an_unknown_entry_node_is_rejected() -> None:
    assert only(workflow(node("a"), entryNodeId="nope")) == FieldError(
        "entryNodeId", "entryNodeId names unknown node 'nope'"
    )


def test_a_node_not_reachable_from_the_entry_node_is_rejected() -> None:
    raw = workflow(node("start", outputs=["a"]), node("a"), node("island", outputs=["a"]), entryNodeId="start")
    problem = only(raw)
    assert problem.path == "nodes[2]"
    assert problem.message == "node 'island' is not reachable from the entry node 'start'"


def test_a_cycle_hanging_off_nothing_is_unreachable_as_well() -> None:
    raw = workflow(node("start"), node("x", outputs=["y"]), node("y", outputs=["x"]))
    found = problems(raw)
    assert [p.path for p in found] == ["nodes[1]", "nodes[1]", "nodes[2]"]
    assert found[0].message == "cycle: x -> y -> x"
    assert "not reachable" in found[1].message and "'x'" in found[1].message


def test_without_entry_node_id_every_node_without_inputs_is_an_entry() -> None:
    definition = parse(workflow(node("a", outputs=["c"]), node("b", outputs=["c"]), node("c")))
    assert build_graph(definition).entries == ("a", "b")


# Node types and configs


def test_an_unknown_node_type_is_rejected_with_the_known_ones() -> None:
    problem = only(workflow(node("a", "email")))
    assert problem.path == "nodes[0].type"
    assert problem.message == (
        "unknown node type 'email' (known types: condition, delay, http, sub-workflow, transform, wait)"
    )


def test_a_custom_type_without_schema_accepts_any_config() -> None:
    node_types = {**BUILTIN_NODE_TYPES, "custom": None}
    parsed = parse(single("custom", {"anything": [1, {"goes": True}]}), node_types)
    assert parsed.nodes[0].config == {"anything": [1, {"goes": True}]}


class EmailConfig(msgspec.Struct, rename="camel"):
    to_address: str
    retries: int = 0


def test_a_custom_type_with_a_struct_schema_reports_paths_inside_config() -> None:
    node_types = {"email": EmailConfig}
    assert parse(single("email", {"toAddress": "x@y.z"}), node_types).nodes[0].config == {"toAddress": "x@y.z"}
    problem = only(single("email", {"toAddress": "x@y.z", "retries": "3"}), node_types)
    assert problem.path == "nodes[0].config.retries"
    assert "Expected `int`, got `str`" in problem.message
    missing = only(single("email", {}), node_types)
    assert missing.path == "nodes[0].config"
    assert "toAddress" in missing.message


class StrictConfig(msgspec.Struct, forbid_unknown_fields=True):
    size: int


def test_a_config_schema_never_sees_the_policy_keys() -> None:
    config = {
        "size": 1,
        "timeoutMs": 10,
        "retryPolicy": {"maxAttempts": 1},
        "rateLimit": {"max": 1, "perMs": 10},
        "circuitBreaker": {},
    }
    parsed = parse(single("strict", config), {"strict": StrictConfig})
    assert parsed.nodes[0].timeout_ms == 10
    assert parsed.nodes[0].retry.max_attempts == 1


def test_a_custom_type_with_a_check_function_sees_the_node_and_its_children() -> None:
    seen: list[ConfigContext] = []

    def check(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
        seen.append(ctx)
        return [FieldError("", "whole config"), FieldError("items[1]", "bad item"), FieldError("x.y", "deep")]

    node_types = {"fan": check, "transform": None}
    raw = workflow(node("f", "fan", outputs=["a", "b"]), node("a"), node("b", inputs=["f"]))
    found = problems(raw, node_types)

    assert seen == [ConfigContext(node_id=NodeId("f"), children=(NodeId("a"), NodeId("b")))]
    assert [p.path for p in found] == ["nodes[0].config", "nodes[0].config.items[1]", "nodes[0].config.x.y"]


def test_transform_accepts_an_empty_config_an_expression_and_a_set() -> None:
    parse(single("transform", {}))
    parse(single("transform", {"expression": "orders[?total > `10`].id", "set": {"ok": True}}))


@pytest.mark.parametrize("expression", ["foo[", "a.b..c", "`unclosed", "a b", ""])
def test_a_bad_jmespath_expression_is_rejected(expression: str) -> None:
    problem = only(single("transform", {"expression": expression}))
    assert problem.path == "nodes[0].config.expression"
    assert problem.message.startswith("expression is not a valid JMESPath expression: ")
    assert "\n" not in problem.message


def test_transform_set_must_be_an_object() -> None:
    assert only(single("transform", {"set": [1]})).path == "nodes[0].config.set"


def condition_flow(config: Raw) -> Raw:
    return workflow(node("c", "condition", config=config, outputs=["yes", "no"]), node("yes"), node("no"))


def test_condition_branches_name_children_of_the_node() -> None:
    parse(condition_flow({"expression": "approved", "trueBranch": "yes", "falseBranch": ["no"]}))


def test_condition_needs_an_expression() -> None:
    found = problems(condition_flow({"trueBranch": "yes"}))
    assert found == [FieldError("nodes[0].config.expression", "expression is required")]


def test_a_condition_with_children_must_name_a_branch() -> None:
    assert only(condition_flow({"expression": "approved"})) == FieldError(
        "nodes[0].config.trueBranch",
        "a condition must name the children to run: trueBranch and/or falseBranch (its children: yes, no)",
    )
    parse(condition_flow({"expression": "approved", "falseBranch": "no"}))  # one side is enough


def test_a_condition_branch_naming_a_non_child_is_rejected() -> None:
    found = problems(condition_flow({"expression": "x", "trueBranch": ["yes", "elsewhere"], "falseBranch": "c"}))
    assert [p.path for p in found] == ["nodes[0].config.trueBranch[1]", "nodes[0].config.falseBranch"]
    assert found[0].message == (
        "trueBranch names 'elsewhere', which is not a child of node 'c' (its children: yes, no)"
    )


def test_a_condition_branch_of_the_wrong_type_is_rejected() -> None:
    assert only(condition_flow({"expression": "x", "trueBranch": 3})).path == "nodes[0].config.trueBranch"


def test_http_needs_only_an_http_url() -> None:
    parse(single("http", {"url": "http://localhost:8080/x?q=1"}))
    parse(single("http", {"url": "https://e.com", "method": "PATCH", "headers": {"A": "b"}, "query": {"n": 1}}))


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({}, "nodes[0].config.url"),
        ({"url": "ftp://files.example.com"}, "nodes[0].config.url"),
        ({"url": "example.com/x"}, "nodes[0].config.url"),
        ({"url": "https://x", "method": "FETCH"}, "nodes[0].config.method"),
        ({"url": "https://x", "headers": {"X-Count": 1}}, 'nodes[0].config.headers["X-Count"]'),
        ({"url": "https://x", "headers": "a: b"}, "nodes[0].config.headers"),
        # A header no request could carry: the node failed every try with h11's LocalProtocolError, retried.
        ({"url": "https://x", "headers": {"X Bad": "1"}}, 'nodes[0].config.headers["X Bad"]'),
        ({"url": "https://x", "headers": {"X-{{ a }}": "1"}}, 'nodes[0].config.headers["X-{{ a }}"]'),
        ({"url": "https://x", "headers": {"": "1"}}, 'nodes[0].config.headers[""]'),
        ({"url": "https://x", "headers": {"X-Name": "Zoë"}}, 'nodes[0].config.headers["X-Name"]'),
        ({"url": "https://x", "query": [1]}, "nodes[0].config.query"),
        ({"url": "https://x", "timeoutMs": 0}, "nodes[0].config.timeoutMs"),
    ],
)
def test_http_config_problems(config: Raw, path: str) -> None:
    assert only(single("http", config)).path == path


@pytest.mark.parametrize(
    "config",
    [
        {"ms": 0},
        {"seconds": 1.5},
        {"until": "2030-01-01T00:00:00Z"},
        {"duration": 500},
        {"durationSeconds": 2.5},
        {"durationMinutes": 1},
    ],
)
def test_delay_takes_one_of_ms_seconds_until_or_the_original_spane_durations(config: Raw) -> None:
    assert parse(single("delay", config)).nodes[0].config == config


def test_delay_with_no_duration_or_two_durations_is_rejected() -> None:
    assert only(single("delay", {})) == FieldError(
        "nodes[0].config",
        "a delay needs exactly one of ms, seconds or until (or the original SPANE's duration, durationSeconds or"
        " durationMinutes); got none",
    )
    assert only(single("delay", {"duration": 1, "ms": 1})).message.endswith("got ms and duration")
    assert only(single("delay", {"ms": 1, "until": "2030-01-01"})).message.endswith("got ms and until")


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"ms": -1}, "nodes[0].config.ms"),
        ({"ms": 1.5}, "nodes[0].config.ms"),
        ({"seconds": -0.1}, "nodes[0].config.seconds"),
        ({"seconds": "5"}, "nodes[0].config.seconds"),
        ({"until": "next tuesday"}, "nodes[0].config.until"),
        ({"duration": -5}, "nodes[0].config.duration"),
        ({"durationMinutes": "1"}, "nodes[0].config.durationMinutes"),
        ({"ms": 10**30}, "nodes[0].config.ms"),  # past a hundred years: a mistake, and beyond int64 ms
        ({"seconds": 1e308}, "nodes[0].config.seconds"),
        ({"durationMinutes": 6e7}, "nodes[0].config.durationMinutes"),
    ],
)
def test_delay_values_are_checked(config: Raw, path: str) -> None:
    assert only(single("delay", config)).path == path


def test_sub_workflow_config() -> None:
    config = {"workflowId": "child", "version": 2, "inputMapping": {"a": "b"}, "outputMapping": {"x": "y"}}
    parse(single("sub-workflow", config))
    found = problems(single("sub-workflow", {"version": 0, "outputMapping": {"x": 1}}))
    assert [p.path for p in found] == [
        "nodes[0].config.workflowId",
        "nodes[0].config.version",
        "nodes[0].config.outputMapping.x",
    ]


def test_sub_workflow_mappings_must_be_jmespath() -> None:
    config = {"workflowId": "child", "inputMapping": {"a": "items[", "b.c": "x"}, "outputMapping": {"": "y"}}
    found = problems(single("sub-workflow", config))
    assert [(p.path, p.message.split(":")[0]) for p in found] == [
        ("nodes[0].config.inputMapping.a", "'items[' is not a valid JMESPath expression"),
        ('nodes[0].config.outputMapping[""]', "outputMapping targets must be keys or dotted paths, got ''"),
    ]


# Policies


@pytest.mark.parametrize(
    ("retry", "path"),
    [
        ({"maxAttempts": 0}, "maxAttempts"),
        ({"maxAttempts": 101}, "maxAttempts"),
        ({"maxAttempts": "3"}, "maxAttempts"),
        ({"continueOnFail": "yes"}, "continueOnFail"),
        ({"backoff": {"type": "linear"}}, "backoff.type"),
        ({"backoff": {"delay": -1}}, "backoff.delay"),
        ({"backoff": {"delay": 100, "maxDelay": 50}}, "backoff.maxDelay"),
        ({"backoff": {"jitter": 1.5}}, "backoff.jitter"),
        ({"backoff": {"jitter": "full"}}, "backoff.jitter"),
        ({"backoff": 5}, "backoff"),
    ],
)
def test_retry_policy_shape_problems_point_inside_the_policy(retry: Raw, path: str) -> None:
    assert only(single("transform", {"retryPolicy": retry})).path == f"nodes[0].config.retryPolicy.{path}"
    assert only(single("transform", {}, retryPolicy=retry)).path == f"nodes[0].retryPolicy.{path}"


def test_max_attempts_range_is_one_to_a_hundred() -> None:
    problem = only(single("transform", {}, retryPolicy={"maxAttempts": 101}))
    assert problem.message == "maxAttempts must be an integer from 1 to 100, got 101"
    assert parse(single("transform", {}, retryPolicy={"maxAttempts": 100})).nodes[0].retry.max_attempts == 100


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"retryPolicy": 3}, "nodes[0].retryPolicy"),
        ({"timeoutMs": -5}, "nodes[0].timeoutMs"),
        ({"timeoutMs": True}, "nodes[0].timeoutMs"),
        ({"circuitBreaker": "on"}, "nodes[0].circuitBreaker"),
        ({"circuitBreaker": {"failureThreshold": 0}}, "nodes[0].circuitBreaker.failureThreshold"),
        ({"rateLimit": {"limit": 1.5, "intervalMs": 1000}}, "nodes[0].rateLimit.limit"),
        ({"rateLimit": {"max": 0, "perMs": 1000}}, "nodes[0].rateLimit.max"),
        ({"rateLimit": {"max": 5, "perMs": -1}}, "nodes[0].rateLimit.perMs"),
        ({"rateLimit": {"max": 5}}, "nodes[0].rateLimit"),
        ({"circuitBreaker": {"successThreshold": -1}}, "nodes[0].circuitBreaker.successThreshold"),
        ({"circuitBreaker": {"timeoutMs": 0}}, "nodes[0].circuitBreaker.timeoutMs"),
    ],
)
def test_node_policy_problems(fields: Raw, path: str) -> None:
    assert only(single("transform", {}, **fields)).path == path


def test_circuit_breaker_and_rate_limit_accept_other_keys_as_given() -> None:
    parsed = parse(single("transform", {}, rateLimit={"limit": 5, "intervalMs": 100, "burst": "x"}))
    assert parsed.nodes[0].rate_limit == {"limit": 5, "intervalMs": 100, "burst": "x"}


# Triggers


@pytest.mark.parametrize("path", ["orders", "a/b-c/d_e.f~g"])
def test_webhook_paths_of_url_safe_segments_are_accepted(path: str) -> None:
    parse(workflow(node("a"), triggers=[{"type": "webhook", "config": {"path": path}}]))


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({}, "triggers[0].config.path"),
        ({"path": ""}, "triggers[0].config.path"),
        ({"path": "/orders"}, "triggers[0].config.path"),
        ({"path": "a b"}, "triggers[0].config.path"),
        ({"path": "a/../b"}, "triggers[0].config.path"),
        ({"path": "a", "method": "HEAD"}, "triggers[0].config.method"),
        ({"path": "a", "secret": ""}, "triggers[0].config.secret"),
        ({"path": "a", "waitMS": 1000}, "triggers[0].config.waitMS"),
        ({"path": "a", "max_age_seconds": 60, "secret": "s"}, "triggers[0].config.max_age_seconds"),
        ({"path": "a", "cron": "* * * * *"}, "triggers[0].config.cron"),
    ],
)
def test_webhook_problems(config: Raw, path: str) -> None:
    assert only(workflow(node("a"), triggers=[{"type": "webhook", "config": config}])).path == path


def test_a_misspelt_or_misplaced_trigger_key_is_named_not_ignored() -> None:
    typo = only(workflow(node("a"), triggers=[{"type": "webhook", "config": {"path": "a", "waitMS": 1000}}]))
    assert typo.message == "unknown key 'waitMS' of a webhook trigger: did you mean 'waitMs'?"
    schedule = {"type": "schedule", "config": {"cron": "* * * * *", "waitMs": 1000}}
    misplaced = only(workflow(node("a"), triggers=[schedule]))
    assert (misplaced.path, misplaced.message) == ("triggers[0].config.waitMs", "'waitMs' is for webhook triggers")
    # Keys of its own, and others (a comment, a key of a newer version), are the author's business.
    parse(workflow(node("a"), triggers=[{"type": "webhook", "config": {"path": "a", "note": "from the shop"}}]))


@pytest.mark.parametrize(
    "cron",
    ["*/5 * * * *", "0 9 * * 1-5", "@daily", "0 0 29 2 *", "30 8 1,15 * MON", "*/10 * * * * *", "0 0 9 * * * 2030"],
)
def test_valid_cron_expressions_are_accepted(cron: str) -> None:
    trigger = {"type": "schedule", "config": {"cron": cron, "timezone": "Europe/Paris"}}
    parse(workflow(node("a"), triggers=[trigger]))


@pytest.mark.parametrize(
    "cron", ["61 * * * *", "* * *", "every day", "0 0 30 2 *", "*/0 * * * *", "@sometimes", "61 * * * * *"]
)
def test_a_bad_cron_expression_is_rejected_with_the_reason(cron: str) -> None:
    problem = only(workflow(node("a"), triggers=[{"type": "schedule", "config": {"cron": cron}}]))
    assert problem.path == "triggers[0].config.cron"
    prefix = f"cron '{cron}' is not a valid cron expression: "
    assert problem.message.startswith(prefix)
    assert len(problem.message) > len(prefix)


def test_schedule_problems() -> None:
    triggers = [
        {"type": "schedule", "config": {"cron": "* * * * *", "timezone": "Mars/Olympus"}},
        {"type": "schedule", "config": {"timezone": "UTC"}},
        {"type": "cron", "config": {}},
    ]
    found = problems(workflow(node("a"), triggers=triggers))
    assert [p.path for p in found] == ["triggers[0].config.timezone", "triggers[1].config.cron", "triggers[2].type"]
    assert found[2].message == "unknown trigger type 'cron' (known types: schedule, webhook)"


# 400 versus 422, and collecting everything


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], ""),
        ("definition", ""),
        ({"nodes": [node("a")]}, "id"),
        ({"id": 7, "nodes": [node("a")]}, "id"),
        ({"id": "wf"}, "nodes"),
        ({"id": "wf", "nodes": {"a": node("a")}}, "nodes"),
        ({"id": "wf", "nodes": ["a"]}, "nodes[0]"),
        ({"id": "wf", "nodes": [{"type": "transform"}]}, "nodes[0].id"),
        ({"id": "wf", "nodes": [{"id": 1, "type": "transform"}]}, "nodes[0].id"),
        ({"id": "wf", "nodes": [{"id": "a"}]}, "nodes[0].type"),
        ({"id": "wf", "nodes": [node("a", config=[])]}, "nodes[0].config"),
        ({"id": "wf", "nodes": [node("a", inputs="b")]}, "nodes[0].inputs"),
        ({"id": "wf", "nodes": [node("a", outputs=["b", 2])]}, "nodes[0].outputs[1]"),
        ({"id": "wf", "name": 3, "nodes": [node("a")]}, "name"),
        ({"id": "wf", "nodes": [node("a")], "entryNodeId": ["a"]}, "entryNodeId"),
        ({"id": "wf", "nodes": [node("a")], "maxConcurrency": "10"}, "maxConcurrency"),
        ({"id": "wf", "nodes": [node("a")], "maxConcurrency": 2.5}, "maxConcurrency"),
        ({"id": "wf", "nodes": [node("a")], "triggers": {}}, "triggers"),
        ({"id": "wf", "nodes": [node("a")], "triggers": [{"config": {}}]}, "triggers[0].type"),
        ({"id": "wf", "nodes": [node("a")], "triggers": [{"type": "webhook", "config": "x"}]}, "triggers[0].config"),
    ],
)
def test_wrong_json_types_are_malformed(raw: object, path: str) -> None:
    assert [p.path for p in malformed(raw)] == [path]


def test_every_wrong_type_is_reported_and_wins_over_broken_rules() -> None:
    raw = {"id": "Not Valid", "nodes": [node("a", outputs=["ghost"]), {"id": 2}, node("a", inputs=[None])]}
    assert [p.path for p in malformed(raw)] == ["nodes[1].id", "nodes[1].type", "nodes[2].inputs[0]"]


def test_every_broken_rule_is_reported_at_once() -> None:
    raw = {
        "id": "Bad Id",
        "name": "",
        "entryNodeId": "start",
        "nodes": [
            node("start", outputs=["ghost", "check"]),
            node("check", "condition", config={"expression": "x[", "trueBranch": "nowhere"}),
            node("start", "http", config={"url": "mailto:x"}),
            node("lost", "delay", config={}),
        ],
        "triggers": [{"type": "schedule", "config": {"cron": "99 * * * *"}}],
    }
    found = problems(raw)
    assert [p.path for p in found] == [
        "id",
        "name",
        "nodes[2].id",
        "nodes[0].outputs[0]",
        "nodes[3]",
        "nodes[1].config.expression",
        "nodes[1].config.trueBranch",
        "nodes[2].config.url",
        "nodes[3].config",
        "triggers[0].config.cron",
    ]
    assert all(p.message for p in found)
    assert len({p.message for p in found}) == len(found)


# Canonical JSON


def test_canonical_json_ignores_key_order() -> None:
    shuffled = {key: API_EXAMPLE[key] for key in reversed(list(API_EXAMPLE))}
    shuffled["nodes"] = [{k: n[k] for k in reversed(list(n))} for n in API_EXAMPLE["nodes"]]
    assert canonical_json(parse(shuffled)) == canonical_json(parse(API_EXAMPLE))


def test_canonical_json_tells_different_definitions_apart() -> None:
    changed = copy.deepcopy(API_EXAMPLE)
    changed["nodes"][2]["config"]["ms"] = 501
    assert canonical_json(parse(changed)) != canonical_json(parse(API_EXAMPLE))


def test_canonical_json_is_the_same_for_an_explicit_default_and_for_none() -> None:
    explicit = parse(single("transform", {}, retryPolicy={"backoff": {"delay": 1000, "jitter": False}}))
    implicit = parse(single("transform", {}, retryPolicy={"backoff": {}}))
    assert explicit == implicit
    assert canonical_json(explicit) == canonical_json(implicit)


def test_canonical_json_survives_storage_and_parses_back_to_the_same_definition() -> None:
    definition = parse(API_EXAMPLE)
    stored = canonical_json(definition)
    assert canonical_json(msgspec.json.decode(stored, type=WorkflowDefinition)) == stored
    assert parse(msgspec.json.decode(stored)) == definition


# Properties


@st.composite
def dags(draw: st.DrawFn) -> tuple[Raw, set[tuple[str, str]]]:
    """A random valid DAG, its edges declared by either end or both, its nodes in random order."""
    ids = draw(st.lists(st.text(min_size=1, max_size=6).filter(str.strip), min_size=1, max_size=10, unique=True))
    pairs = draw(st.lists(st.tuples(st.sampled_from(range(len(ids))), st.sampled_from(range(len(ids))))))
    edges = {(ids[min(i, j)], ids[max(i, j)]) for i, j in pairs if i != j}
    nodes: dict[str, Raw] = {n: {"id": n, "type": "transform"} for n in ids}
    for src, dst in sorted(edges):
        side = draw(st.sampled_from(["outputs", "inputs", "both"]))
        if side in ("outputs", "both"):
            nodes[src].setdefault("outputs", []).append(dst)
        if side in ("inputs", "both"):
            nodes[dst].setdefault("inputs", []).append(src)
    order = draw(st.permutations(ids))
    return {"id": "dag", "nodes": [nodes[n] for n in order]}, edges


@settings(max_examples=150, deadline=None)
@given(dags())
def test_random_dags_parse_into_the_same_graph(dag: tuple[Raw, set[tuple[str, str]]]) -> None:
    raw, edges = dag
    definition = parse(raw)
    graph = build_graph(definition)
    assert {(src, dst) for src, children in graph.children.items() for dst in children} == edges
    assert canonical_json(parse(msgspec.json.decode(canonical_json(definition)))) == canonical_json(definition)


@settings(max_examples=150, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(dag: tuple[Raw, set[tuple[str, str]]], data: st.DataObject) -> None:
    raw, edges = dag
    # The message joins the path with " -> ": an id holding that separator cannot be read back from it.
    assume(edges and not any(" -> " in n["id"] for n in raw["nodes"]))
    src, dst = data.draw(st.sampled_from(sorted(edges)))
    back = next(n for n in raw["nodes"] if n["id"] == dst)
    back.setdefault("outputs", []).append(src)
    edges = edges | {(dst, src)}

    cycles = [p.message.removeprefix("cycle: ").split(" -> ") for p in problems(raw) if p.message.startswith("cycle: ")]
    assert len(cycles) == 1
    path = cycles[0]
    assert path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1
    assert all((a, b) in edges for a, b in itertools.pairwise(path))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def locations(value: object, at: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from locations(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from locations(item, (*at, index))


def replaced(value: Any, at: tuple[str | int, ...], new: object) -> Any:
    if not at:
        return new
    out = copy.copy(value)
    out[at[0]] = replaced(value[at[0]], at[1:], new)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damage_to_a_valid_definition_is_reported_never_raised_otherwise(data: st.DataObject) -> None:
    at = data.draw(st.sampled_from(list(locations(API_EXAMPLE))))
    new = data.draw(json_values | st.sampled_from(["* * * * *", "@daily", "a/b", "UTC", "foo[", "https://x"]))
    try:
        parse(replaced(API_EXAMPLE, at, new))
    except (InvalidInput, MalformedInput) as e:
        assert e.errors
        assert all(isinstance(p, FieldError) and p.message for p in e.errors)


cron_text = st.lists(
    st.sampled_from(["*", "/", "-", ",", "0", "5", "59", "60", "L", "W", "#", "?", "H", "jan", "mon", "@", " "]),
    max_size=14,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(cron=cron_text | st.text(max_size=20), timezone=st.text(max_size=20), expression=st.text(max_size=20))
def test_odd_strings_in_parsed_fields_are_reported_never_raised_otherwise(
    cron: str, timezone: str, expression: str
) -> None:
    raw = workflow(
        node("a", config={"expression": expression}),
        triggers=[{"type": "schedule", "config": {"cron": cron, "timezone": timezone}}],
    )
    try:
        parse(raw)
    except InvalidInput as e:
        assert {p.path for p in e.errors} <= {
            "nodes[0].config.expression",
            "triggers[0].config.cron",
            "triggers[0].config.timezone",
        }
