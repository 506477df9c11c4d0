"""The workflow definition: its typed model and the graph it describes.

Validation of raw (JSON-decoded) definitions lives in ``validation.py``; this module holds the shapes and the
graph queries the engine needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import msgspec

from spane_core.ids import NodeId, WorkflowId


class Backoff(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    type: Literal["fixed", "exponential"] = "exponential"
    delay: int = 1000
    max_delay: int | None = None
    jitter: bool | float = False


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    max_attempts: int = 3
    backoff: Backoff = msgspec.field(default_factory=Backoff)
    continue_on_fail: bool = False


DEFAULT_RETRY_POLICY = RetryPolicy()


class NodeDef(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    id: NodeId
    type: str
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    inputs: list[NodeId] = msgspec.field(default_factory=list)
    outputs: list[NodeId] = msgspec.field(default_factory=list)
    name: str | None = None
    # Read from ``config`` (as the TypeScript engine does) or beside it; validation merges them here.
    retry_policy: RetryPolicy | None = None
    circuit_breaker: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    timeout_ms: int | None = None

    @property
    def retry(self) -> RetryPolicy:
        return self.retry_policy or DEFAULT_RETRY_POLICY


class TriggerDef(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    type: Literal["webhook", "schedule"]
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class WorkflowDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    id: WorkflowId
    name: str
    nodes: list[NodeDef]
    entry_node_id: NodeId | None = None
    max_concurrency: int | None = None
    timeout_ms: int | None = None  # an execution not finished this long after it runs fails (ExecutionTimeout)
    description: str | None = None
    triggers: list[TriggerDef] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class Graph:
    """Edges are the union of every node's ``outputs`` and every node's ``inputs``."""

    nodes: Mapping[NodeId, NodeDef]
    parents: Mapping[NodeId, tuple[NodeId, ...]]
    children: Mapping[NodeId, tuple[NodeId, ...]]
    entries: tuple[NodeId, ...]
    terminals: tuple[NodeId, ...]
    order: tuple[NodeId, ...]  # topological (Kahn, stable in definition order); cyclic nodes left out
    position: Mapping[NodeId, int]  # each node's index in ``order``


def build_graph(definition: WorkflowDefinition) -> Graph:
    """The graph of a definition whose edges all name known nodes (validation guarantees it)."""
    nodes = {n.id: n for n in definition.nodes}
    parents: dict[NodeId, list[NodeId]] = {n: [] for n in nodes}
    children: dict[NodeId, list[NodeId]] = {n: [] for n in nodes}
    edges: set[tuple[NodeId, NodeId]] = set()  # a set, not ``in children[src]``: a fan-out of N is then O(N)

    def link(src: NodeId, dst: NodeId) -> None:
        if src in nodes and dst in nodes and (src, dst) not in edges:
            edges.add((src, dst))
            children[src].append(dst)
            parents[dst].append(src)

    for node in definition.nodes:
        for out in node.outputs:
            link(node.id, out)
        for inp in node.inputs:
            link(inp, node.id)
    if definition.entry_node_id is not None:
        entries: tuple[NodeId, ...] = (definition.entry_node_id,)
    else:
        entries = tuple(n for n in nodes if not parents[n])
    terminals = tuple(n for n in nodes if not children[n])
    indegree = {n: len(parents[n]) for n in nodes}
    order = [n for n in nodes if indegree[n] == 0]
    for ready in order:  # grows while iterating: a breadth-first Kahn sort
        for child in children[ready]:
            indegree[child] -= 1
            if indegree[child] == 0:
                order.append(child)
    return Graph(
        nodes=nodes,
        parents={k: tuple(v) for k, v in parents.items()},
        children={k: tuple(v) for k, v in children.items()},
        entries=entries,
        terminals=terminals,
        order=tuple(order),
        position={n: i for i, n in enumerate(order)},
    )


@dataclass(frozen=True)
class Workflow:
    """A stored, valid definition at one version, with its graph computed once."""

    definition: WorkflowDefinition
    version: int

    @property
    def id(self) -> WorkflowId:
        return self.definition.id

    @cached_property
    def graph(self) -> Graph:
        return build_graph(self.definition)

    def node(self, node_id: NodeId) -> NodeDef:
        return self.graph.nodes[node_id]
