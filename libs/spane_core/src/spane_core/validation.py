"""Validation of a raw (JSON-decoded) workflow definition into the typed model. Pure: no I/O.

Two passes. The first reads the definition's own fields (top level, each node, each trigger) and their
JSON types; any wrong type raises ``MalformedInput`` (HTTP 400) listing every such problem. The second checks
the rules (ids, edges, graph, node configs, policies, triggers) and raises ``InvalidInput`` (HTTP 422)
listing every broken rule. Unknown fields are ignored, for compatibility with the TypeScript format.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from spane_core.definition import NodeDef, WorkflowDefinition, build_graph
from spane_core.errors import FieldError, InvalidInput, MalformedInput
from spane_core.fields import WORKFLOW_ID_RULE, FieldReader, is_workflow_id, json_type, nest_path, show
from spane_core.graph_rules import check_graph
from spane_core.ids import NodeId, WorkflowId
from spane_core.limits import DEFAULT_LIMITS, DefinitionLimits, check_size
from spane_core.node_policies import MOVED_KEYS, POLICY_KEYS, read_policies
from spane_core.node_schemas import BUILTIN_NODE_TYPES, ConfigContext, NodeTypeSpec, check_config
from spane_core.trigger_rules import check_trigger

__all__ = ["BUILTIN_NODE_TYPES", "ConfigContext", "NodeTypeSpec", "canonical_json", "parse_definition"]


@dataclass(frozen=True)
class _RawNode:
    id: str
    type: str
    name: str | None
    config: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    beside: dict[str, Any]  # the policy keys given beside ``config``


@dataclass(frozen=True)
class _RawDefinition:
    id: str
    name: str | None
    description: str | None
    entry_node_id: str | None
    max_concurrency: int | None
    timeout_ms: int | None
    nodes: list[_RawNode]  # one per entry of ``nodes``, in order
    triggers: list[tuple[str, dict[str, Any]]]


def parse_definition(
    raw: object, node_types: Mapping[str, NodeTypeSpec | None], limits: DefinitionLimits = DEFAULT_LIMITS
) -> WorkflowDefinition:
    """The typed definition of a JSON-decoded one whose node types are keys of ``node_types``.

    Raises ``MalformedInput`` when a field has the wrong JSON type, else ``InvalidInput`` listing every
    broken rule. ``retryPolicy``, ``circuitBreaker`` and ``rateLimit`` found in a node's ``config`` move to
    the node's own fields; ``timeoutMs`` is copied there and stays in ``config``, where the http node reads
    it. A missing ``name`` defaults to the id. A definition over ``limits`` is refused before any other rule.
    """
    draft = _read_shape(raw)
    check_size(((n.id, n.inputs, n.outputs) for n in draft.nodes), limits)
    errors: list[FieldError] = []
    _check_workflow_fields(draft, errors)
    # Collected apart so that the report reads in order: workflow, graph, each node, triggers.
    node_errors: list[list[FieldError]] = [[] for _ in draft.nodes]
    nodes = [_node_def(node, f"nodes[{i}]", node_errors[i]) for i, node in enumerate(draft.nodes)]
    trigger_errors: list[FieldError] = []
    triggers = [
        check_trigger(kind, config, f"triggers[{i}]", trigger_errors) for i, (kind, config) in enumerate(draft.triggers)
    ]
    definition = WorkflowDefinition(
        id=WorkflowId(draft.id),
        name=draft.id if draft.name is None else draft.name,
        description=draft.description,
        nodes=nodes,
        entry_node_id=None if draft.entry_node_id is None else NodeId(draft.entry_node_id),
        max_concurrency=draft.max_concurrency,
        timeout_ms=draft.timeout_ms,
        triggers=[t for t in triggers if t is not None],
    )
    if nodes:
        errors.extend(check_graph(definition))
        _check_configs(definition, node_types, node_errors)
    errors.extend(problem for problems in node_errors for problem in problems)
    errors.extend(trigger_errors)
    if errors:
        count = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
        raise InvalidInput(f"invalid workflow definition ({count})", errors)
    return definition


def canonical_json(definition: WorkflowDefinition) -> bytes:
    """A stable encoding, keys sorted at every level: equal definitions give equal bytes."""
    return msgspec.json.encode(_without_defaults(definition), order="sorted")


def _without_defaults(value: object) -> object:
    # msgspec's ``omit_defaults`` compares by identity (``delay=1000`` read from JSON is kept, the default is
    # not), so equal structs could encode differently; this drops every field equal to its default instead.
    match value:
        case msgspec.Struct():
            plain: dict[str, object] = {}
            for info in _fields(type(value)):
                field_value = getattr(value, info.name)
                if info.default is not msgspec.NODEFAULT:
                    default = info.default
                elif info.default_factory is not msgspec.NODEFAULT:
                    default = info.default_factory()
                else:
                    default = msgspec.NODEFAULT
                if default is msgspec.NODEFAULT or field_value != default:
                    plain[info.encode_name] = _without_defaults(field_value)
            return plain
        case dict():
            return {key: _without_defaults(item) for key, item in value.items()}
        case list():
            return [_without_defaults(item) for item in value]
        case _:
            return value


@functools.cache
def _fields(struct: type[msgspec.Struct]) -> tuple[msgspec.structs.FieldInfo, ...]:
    # Once per type: msgspec.structs.fields resolves the type hints on every call (~0.1 ms), 10,000 nodes a second.
    return msgspec.structs.fields(struct)


def _read_shape(raw: object) -> _RawDefinition:
    if not isinstance(raw, dict):
        problem = FieldError("", f"a workflow definition must be a JSON object, got {json_type(raw)}")
        raise MalformedInput("malformed workflow definition", [problem])
    errors: list[FieldError] = []
    top = FieldReader(raw, "", errors)
    workflow_id = top.string("id", required=True)
    name, description = top.string("name"), top.string("description")
    entry_node_id, max_concurrency = top.string("entryNodeId"), top.integer("maxConcurrency")
    timeout_ms = top.integer("timeoutMs")
    nodes = [_read_node(item, f"nodes[{i}]", errors) for i, item in enumerate(top.array("nodes", required=True) or [])]
    triggers = [_read_trigger(item, f"triggers[{i}]", errors) for i, item in enumerate(top.array("triggers") or [])]
    if errors or workflow_id is None:
        raise MalformedInput("malformed workflow definition", errors)
    return _RawDefinition(
        id=workflow_id,
        name=name,
        description=description,
        entry_node_id=entry_node_id,
        max_concurrency=max_concurrency,
        timeout_ms=timeout_ms,
        nodes=[node for node in nodes if node is not None],
        triggers=[trigger for trigger in triggers if trigger is not None],
    )


def _read_node(item: object, path: str, errors: list[FieldError]) -> _RawNode | None:
    if not isinstance(item, dict):
        errors.append(FieldError(path, f"a node must be an object, got {json_type(item)}"))
        return None
    reader = FieldReader(item, path, errors)
    node_id, node_type = reader.string("id", required=True), reader.string("type", required=True)
    name, config = reader.string("name"), reader.mapping("config")
    inputs, outputs = reader.string_list("inputs"), reader.string_list("outputs")
    if node_id is None or node_type is None:
        return None
    beside = {key: item[key] for key in POLICY_KEYS if item.get(key) is not None}
    return _RawNode(node_id, node_type, name, config or {}, inputs or [], outputs or [], beside)


def _read_trigger(item: object, path: str, errors: list[FieldError]) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(item, dict):
        errors.append(FieldError(path, f"a trigger must be an object, got {json_type(item)}"))
        return None
    reader = FieldReader(item, path, errors)
    kind, config = reader.string("type", required=True), reader.mapping("config")
    return None if kind is None else (kind, config or {})


def _check_workflow_fields(draft: _RawDefinition, errors: list[FieldError]) -> None:
    if not is_workflow_id(draft.id):
        errors.append(FieldError("id", f"id must be {WORKFLOW_ID_RULE}, got {show(draft.id)}"))
    if draft.name is not None and not draft.name.strip():
        errors.append(FieldError("name", "name must not be empty"))
    if draft.max_concurrency is not None and draft.max_concurrency < 1:
        message = f"maxConcurrency must be a positive integer, got {draft.max_concurrency}"
        errors.append(FieldError("maxConcurrency", message))
    if draft.timeout_ms is not None and draft.timeout_ms < 1:
        errors.append(FieldError("timeoutMs", f"timeoutMs must be a positive integer, got {draft.timeout_ms}"))
    if not draft.nodes:
        errors.append(FieldError("nodes", "a workflow needs at least one node"))


def _node_def(node: _RawNode, path: str, errors: list[FieldError]) -> NodeDef:
    policies = read_policies(node.config, node.beside, path, errors)
    return NodeDef(
        id=NodeId(node.id),
        type=node.type,
        name=node.name,
        config={key: value for key, value in node.config.items() if key not in MOVED_KEYS},
        inputs=[NodeId(n) for n in node.inputs],
        outputs=[NodeId(n) for n in node.outputs],
        retry_policy=policies.retry_policy,
        circuit_breaker=policies.circuit_breaker,
        rate_limit=policies.rate_limit,
        timeout_ms=policies.timeout_ms,
    )


def _check_configs(
    definition: WorkflowDefinition,
    node_types: Mapping[str, NodeTypeSpec | None],
    node_errors: list[list[FieldError]],
) -> None:
    graph = build_graph(definition)
    for index, (node, errors) in enumerate(zip(definition.nodes, node_errors, strict=True)):
        if node.type not in node_types:
            known = ", ".join(sorted(node_types)) or "none"
            message = f"unknown node type {show(node.type)} (known types: {known})"
            errors.append(FieldError(f"nodes[{index}].type", message))
            continue
        children = tuple(child for child in graph.children[node.id] if child != node.id)
        ctx = ConfigContext(node_id=node.id, children=children)
        # No schema needs to know the policy keys: they were checked apart.
        config = {key: value for key, value in node.config.items() if key not in POLICY_KEYS}
        for problem in check_config(node_types[node.type], config, ctx):
            errors.append(FieldError(nest_path(f"nodes[{index}].config", problem.path), problem.message))
