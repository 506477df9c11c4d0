"""Which pending nodes a decision must look at to find the ones that became ready (or must be skipped).

A node's readiness changes only when one of its parents is resolved, so after a result only the children of the
nodes resolved since the last look are candidates: a fan-out of N then costs O(N) over the execution instead of a
scan of every node per result (O(N²)). Every node is looked at after a start or a resume (nodes resolved while
paused were never looked at), when ``maxConcurrency`` holds back ready nodes (they wait for a slot, not for a
parent), and in a small graph, where a scan costs less than the tracking.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping

from spane_core.definition import Graph
from spane_core.ids import NodeId
from spane_core.state import PENDING_NODE, NodeState, NodeStatus

SMALL_GRAPH = 64  # nodes


def children_of_resolved(
    graph: Graph, resolved: list[NodeId], nodes: Callable[[], Mapping[NodeId, NodeState]]
) -> Iterator[NodeId]:
    """The pending children of the ``resolved`` nodes, in topological order so that a skip reaches the nodes after
    it: nodes that the caller resolves while iterating (appended to ``resolved``) add their children. Drains
    ``resolved``."""
    heap: list[int] = []
    seen: set[NodeId] = set()

    def take_resolved() -> None:
        for parent in resolved:
            for child in graph.children[parent]:
                if child not in seen:
                    seen.add(child)
                    heapq.heappush(heap, graph.position[child])
        resolved.clear()

    take_resolved()
    while heap:
        node_id = graph.order[heapq.heappop(heap)]
        if nodes().get(node_id, PENDING_NODE).status is NodeStatus.PENDING:
            yield node_id
        take_resolved()
