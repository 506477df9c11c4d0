"""The graph rules of a workflow definition: unique ids, known edge ends, no cycle, every node reachable.

Paths name nodes by their position in ``nodes``, the way the definition was posted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import msgspec

from spane_core.definition import Graph, WorkflowDefinition, build_graph
from spane_core.errors import FieldError
from spane_core.fields import show
from spane_core.ids import NodeId


def check_graph(definition: WorkflowDefinition) -> list[FieldError]:
    """Every broken graph rule of a definition with at least one node."""
    errors: list[FieldError] = []
    first_index = _check_ids(definition, errors)
    _check_edges(definition, first_index, errors)
    # Self edges are reported above; left in, they would also count as cycles and as parents.
    graph = build_graph(_without_self_edges(definition))
    for cycle in find_cycles(list(first_index), graph.children):
        path = " -> ".join(cycle)
        errors.append(FieldError(f"nodes[{first_index[cycle[0]]}]", f"cycle: {path}"))
    entry = definition.entry_node_id
    if entry is not None and entry not in first_index:
        errors.append(FieldError("entryNodeId", f"entryNodeId names unknown node {show(entry)}"))
    elif not graph.entries:
        message = "no entry node: every node has an input; set entryNodeId or add a node without inputs"
        errors.append(FieldError("nodes", message))
    else:
        _check_reachable(graph, first_index, errors)
    return errors


def _check_ids(definition: WorkflowDefinition, errors: list[FieldError]) -> dict[NodeId, int]:
    first_index: dict[NodeId, int] = {}
    for index, node in enumerate(definition.nodes):
        if not node.id.strip():
            errors.append(FieldError(f"nodes[{index}].id", "node id must not be empty"))
        if node.id in first_index:
            both = f"nodes[{first_index[node.id]}] and nodes[{index}]"
            errors.append(FieldError(f"nodes[{index}].id", f"duplicate node id {show(node.id)}: {both}"))
        else:
            first_index[node.id] = index
    return first_index


def _check_edges(definition: WorkflowDefinition, known: Mapping[NodeId, int], errors: list[FieldError]) -> None:
    for index, node in enumerate(definition.nodes):
        for key, targets in (("inputs", node.inputs), ("outputs", node.outputs)):
            for position, target in enumerate(targets):
                path = f"nodes[{index}].{key}[{position}]"
                if target not in known:
                    errors.append(FieldError(path, f"edge to unknown node {show(target)}"))
                elif target == node.id:
                    errors.append(FieldError(path, f"node {show(node.id)} has an edge to itself"))


def _without_self_edges(definition: WorkflowDefinition) -> WorkflowDefinition:
    nodes = [
        msgspec.structs.replace(
            node,
            inputs=[n for n in node.inputs if n != node.id],
            outputs=[n for n in node.outputs if n != node.id],
        )
        for node in definition.nodes
    ]
    return msgspec.structs.replace(definition, nodes=nodes)


def find_cycles(order: Sequence[NodeId], children: Mapping[NodeId, Sequence[NodeId]]) -> list[list[NodeId]]:
    """One cycle per strongly connected component of several nodes, as a closed path ``[a, b, c, a]``.

    Deterministic: each cycle starts at its component's first node in ``order`` and is the shortest way back
    to it, trying children in their order.
    """
    position = {node: i for i, node in enumerate(order)}
    cycles = []
    for component in _components(order, children):
        if len(component) < 2:
            continue
        start = min(component, key=position.__getitem__)
        cycles.append(_shortest_loop(start, set(component), children))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _components(order: Sequence[NodeId], children: Mapping[NodeId, Sequence[NodeId]]) -> list[list[NodeId]]:
    """Tarjan's strongly connected components, iterative so that a long chain cannot overflow the stack."""
    index: dict[NodeId, int] = {}
    low: dict[NodeId, int] = {}
    stack: list[NodeId] = []
    on_stack: set[NodeId] = set()
    components: list[list[NodeId]] = []

    def visit(node: NodeId) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in order:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(children.get(root, ())))]
        while work:
            node, pending = work[-1]
            for child in pending:
                if child not in index:
                    visit(child)
                    work.append((child, iter(children.get(child, ()))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _shortest_loop(start: NodeId, within: set[NodeId], children: Mapping[NodeId, Sequence[NodeId]]) -> list[NodeId]:
    came_from: dict[NodeId, NodeId] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in children.get(node, ()):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child in within and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError("a strongly connected component always loops back to its start")


def _check_reachable(graph: Graph, first_index: Mapping[NodeId, int], errors: list[FieldError]) -> None:
    reached = set(graph.entries)
    queue = deque(graph.entries)
    while queue:
        for child in graph.children[queue.popleft()]:
            if child not in reached:
                reached.add(child)
                queue.append(child)
    entries = ", ".join(show(e) for e in graph.entries)
    plural = "s" if len(graph.entries) > 1 else ""
    for node, index in first_index.items():
        if node not in reached:
            message = f"node {show(node)} is not reachable from the entry node{plural} {entries}"
            errors.append(FieldError(f"nodes[{index}]", message))
