"""Validation of a raw (JSON-decoded) workflow definition into the typed model. Pure: no I/O.

Two passes. The first reads the definition's own fields and their JSON types; any wrong type raises
``MalformedInput`` (HTTP 400) with every such problem. The second checks the rules (ids, edges, graph, node
configs, policies, triggers) and raises ``InvalidInput`` (HTTP 422) with every broken rule. Unknown fields are
ignored, for compatibility with the TypeScript format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from spane_core.definition import NodeDef, TriggerDef, WorkflowDefinition, build_graph
from spane_core.errors import FieldError, InvalidInput, MalformedInput
from spane_core.fields import WORKFLOW_ID_RULE, FieldReader, is_workflow_id, join_path, json_type, show
from spane_core.graph_checks import check_graph
from spane_core.ids import NodeId, WorkflowId
from spane_core.node_schemas import BUILTIN_NODE_TYPES, NodeContext, NodeTypeSpec, check_config
from spane_core.policies import POLICY_KEYS, NodePolicies, read_policies
from spane_core.triggers import check_trigger

__all__ = ["BUILTIN_NODE_TYPES", "NodeContext", "NodeTypeSpec", "canonical_json", "parse_definition"]


@dataclass
class _RawNode:
    index: int
    id: str
    type: str
    name: str | None
    config: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    beside: dict[str, Any] = field(default_factory=dict)  # policy keys given beside ``config``

    @property
    def path(self) -> str:
        return f"nodes[{self.index}]"


@dataclass
class _RawDefinition:
    id: str
    name: str | None
    description: str | None
    entry_node_id: str | None
    max_concurrency: int | None
    nodes: list[_RawNode]
    triggers: list[tuple[str, dict[str, Any]]]


def parse_definition(raw: object, node_types: Mapping[str, NodeTypeSpec | None]) -> WorkflowDefinition:
    """The typed definition of a JSON-decoded one, whose node types must all be keys of ``node_types``.

    Raises ``MalformedInput`` when a field has the wrong JSON type, else ``InvalidInput`` listing every broken
    rule. The policy keys found in a node's ``config`` move to the node's own fields.
    """
    draft = _read_shape(raw)
    errors: list[FieldError] = []
    _check_workflow_fields(draft, errors)
    nodes = [_node_def(node, errors) for node in draft.nodes]
    definition = WorkflowDefinition(
        id=WorkflowId(draft.id),
        name=draft.id if draft.name is None else draft.name,
        description=draft.description,
        nodes=nodes,
        entry_node_id=None if draft.entry_node_id is None else NodeId(draft.entry_node_id),
        max_concurrency=draft.max_concurrency,
        triggers=[t for i, (kind, config) in enumerate(draft.triggers) if (t := _trigger(i, kind, config, errors))],
    )
    if nodes:
        errors.extend(check_graph(definition))
        _check_configs(definition, draft.nodes, node_types, errors)
    if errors:
        count = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
        raise InvalidInput(f"invalid workflow definition ({count})", errors)
    return definition


def canonical_json(definition: WorkflowDefinition) -> bytes:
    """A stable encoding (keys sorted at every level): equal definitions give equal bytes."""
    return msgspec.json.encode(definition, order="sorted")


def _read_shape(raw: object) -> _RawDefinition:
    if not isinstance(raw, dict):
        problem = FieldError("", f"a workflow definition must be a JSON object, got {json_type(raw)}")
        raise MalformedInput("malformed workflow definition", [problem])
    errors: list[FieldError] = []
    top = FieldReader(raw, "", errors)
    workflow_id = top.string("id", required=True)
    name = top.string("name")
    description = top.string("description")
    entry_node_id = top.string("entryNodeId")
    max_concurrency = top.integer("maxConcurrency")
    raw_nodes = top.array("nodes", required=True) or []
    nodes = [node for i, item in enumerate(raw_nodes) if (node := _read_node(item, i, errors))]
    triggers = []
    for index, item in enumerate(top.array("triggers") or []):
        if not isinstance(item, dict):
            errors.append(FieldError(f"triggers[{index}]", f"a trigger must be an object, got {json_type(item)}"))
            continue
        reader = FieldReader(item, f"triggers[{index}]", errors)
        kind, config = reader.string("type", required=True), reader.mapping("config")
        triggers.append((kind or "", config or {}))
    if errors or workflow_id is None:
        raise MalformedInput("malformed workflow definition", errors)
    return _RawDefinition(workflow_id, name, description, entry_node_id, max_concurrency, nodes, triggers)


def _read_node(item: object, index: int, errors: list[FieldError]) -> _RawNode | None:
    if not isinstance(item, dict):
        errors.append(FieldError(f"nodes[{index}]", f"a node must be an object, got {json_type(item)}"))
        return None
    reader = FieldReader(item, f"nodes[{index}]", errors)
    node_id, node_type = reader.string("id", required=True), reader.string("type", required=True)
    name, config = reader.string("name"), reader.mapping("config") or {}
    inputs, outputs = reader.string_list("inputs") or [], reader.string_list("outputs") or []
    if node_id is None or node_type is None:
        return None
    beside = {key: item[key] for key in POLICY_KEYS if item.get(key) is not None}
    return _RawNode(index, node_id, node_type, name, config, inputs, outputs, beside)


def _check_workflow_fields(draft: _RawDefinition, errors: list[FieldError]) -> None:
    if not is_workflow_id(draft.id):
        errors.append(FieldError("id", f"id must be {WORKFLOW_ID_RULE}, got {show(draft.id)}"))
    if draft.name is not None and not draft.name.strip():
        errors.append(FieldError("name", "name must not be empty"))
    if draft.max_concurrency is not None and draft.max_concurrency < 1:
        message = f"maxConcurrency must be a positive integer, got {draft.max_concurrency}"
        errors.append(FieldError("maxConcurrency", message))
    if not draft.nodes:
        errors.append(FieldError("nodes", "a workflow needs at least one node"))


def _node_def(node: _RawNode, errors: list[FieldError]) -> NodeDef:
    policies: NodePolicies = read_policies(node.config, node.beside, node.path, errors)
    return NodeDef(
        id=NodeId(node.id),
        type=node.type,
        name=node.name,
        config={k: v for k, v in node.config.items() if k not in POLICY_KEYS},
        inputs=[NodeId(n) for n in node.inputs],
        outputs=[NodeId(n) for n in node.outputs],
        retry_policy=policies.retry_policy,
        circuit_breaker=policies.circuit_breaker,
        rate_limit=policies.rate_limit,
        timeout_ms=policies.timeout_ms,
    )


def _check_configs(
    definition: WorkflowDefinition,
    raw_nodes: list[_RawNode],
    node_types: Mapping[str, NodeTypeSpec | None],
    errors: list[FieldError],
) -> None:
    graph = build_graph(definition)
    for raw, node in zip(raw_nodes, definition.nodes, strict=True):
        if node.type not in node_types:
            known = ", ".join(sorted(node_types)) or "none"
            message = f"unknown node type {show(node.type)} (known types: {known})"
            errors.append(FieldError(join_path(raw.path, "type"), message))
            continue
        children = tuple(c for c in graph.children.get(node.id, ()) if c != node.id)
        ctx = NodeContext(node_id=node.id, children=children)
        base = join_path(raw.path, "config")
        for problem in check_config(node_types[node.type], node.config, ctx):
            errors.append(FieldError(_nest(base, problem.path), problem.message))


def _nest(base: str, relative: str) -> str:
    if not relative:
        return base
    return base + relative if relative.startswith("[") else f"{base}.{relative}"


def _trigger(index: int, kind: str, config: dict[str, Any], errors: list[FieldError]) -> TriggerDef | None:
    return check_trigger(index, kind, config, errors)
