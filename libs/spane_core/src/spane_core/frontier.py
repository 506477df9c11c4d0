"""Which pending nodes a decision must look at to find the ones that became ready (or must be skipped).

A node's readiness changes only when one of its parents is resolved, so after a result only the children of the
nodes resolved since the last look are candidates: a fan-out of N then costs O(N) over the execution instead of a
scan of every node per result (O(N²)). Everything is looked at after a start or a resume (nodes resolved while
paused were never looked at), and always when ``maxConcurrency`` holds back ready nodes (they wait for a slot,
not for a parent).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping

from spane_core.definition import Graph
from spane_core.ids import NodeId
from spane_core.state import PENDING_NODE, RESOLVED, NodeState, NodeStatus


class Frontier:
    def __init__(self, graph: Graph, everything: bool) -> None:
        self.graph = graph
        self.everything = everything
        self.resolved: list[NodeId] = []  # nodes resolved since the last look

    def saw(self, node_id: NodeId, was: NodeStatus, now: NodeStatus) -> None:
        if now in RESOLVED and was not in RESOLVED:
            self.resolved.append(node_id)

    def look_at_everything(self) -> None:
        self.everything = True

    def pending(self, nodes: Callable[[], Mapping[NodeId, NodeState]], everything: bool = False) -> Iterator[NodeId]:
        """The candidates still pending, in topological order, so that a skip reaches the nodes after it: nodes
        resolved while iterating (skipped by the caller) add their children."""
        graph = self.graph
        if everything or self.everything:
            self.everything = False
            for node_id in graph.order:
                if nodes().get(node_id, PENDING_NODE).status is NodeStatus.PENDING:
                    yield node_id
            self.resolved.clear()  # every node after them in the order was looked at
            return
        heap: list[int] = []
        seen: set[NodeId] = set()

        def take_resolved() -> None:
            for parent in self.resolved:
                for child in graph.children[parent]:
                    if child not in seen:
                        seen.add(child)
                        heapq.heappush(heap, graph.position[child])
            self.resolved.clear()

        take_resolved()
        while heap:
            node_id = graph.order[heapq.heappop(heap)]
            if nodes().get(node_id, PENDING_NODE).status is NodeStatus.PENDING:
                yield node_id
            take_resolved()
