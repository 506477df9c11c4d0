"""Big graphs, one execution each: ``wide`` (1 -> N -> 1 for N = 1,000 and 10,000) and ``long`` (a chain of 1,000,
beside a chain of 100 for reference), on the system that the other workloads ran on.

Per graph: the time to register it (``POST /api/workflows``, wall clock), the time to execute it (from the commit of
``execution.started`` to that of ``execution.completed``, both read from the execution's log, so polling adds
nothing), per node and, for chains, per hop; and the size of the execution's snapshot in Redis when it finished
(the state that every commit of the execution rewrites).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import redis.asyncio as aioredis
from spane_core import codec
from spane_core.keys import for_execution

TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Graph:
    name: str
    shape: str  # "wide" or "long"
    size: int  # branches (wide) or links (long)

    @property
    def workflow_id(self) -> str:
        return f"bench-{self.name}"

    @property
    def nodes(self) -> int:
        return self.size + 2 if self.shape == "wide" else self.size

    @property
    def hops(self) -> int:
        return 3 if self.shape == "wide" else self.size

    def definition(self) -> dict[str, Any]:
        if self.shape == "wide":
            branches = [f"b{i:05d}" for i in range(self.size)]
            nodes: list[dict[str, Any]] = [{"id": "start", "type": "transform", "outputs": branches}]
            nodes += [{"id": b, "type": "transform", "outputs": ["join"]} for b in branches]
            nodes.append({"id": "join", "type": "transform"})
        else:
            links = [f"c{i:05d}" for i in range(self.size)]
            nodes = [
                {"id": n, "type": "transform", "outputs": [links[i + 1]] if i + 1 < len(links) else []}
                for i, n in enumerate(links)
            ]
        return {"id": self.workflow_id, "name": f"Benchmark: {self.name}", "nodes": nodes}

    def check(self, execution: dict[str, Any], value: Any) -> str | None:
        if execution.get("status") != "completed":
            return f"status {execution.get('status')!r}, error {execution.get('error')!r}"
        if len(execution.get("nodes") or {}) != self.nodes:
            return f"{len(execution.get('nodes') or {})} nodes, expected {self.nodes}"
        output = execution.get("output")
        if self.shape == "long":
            return None if output == value else "the chain's output is not its input"
        if not isinstance(output, dict) or len(output) != self.size or any(v != value for v in output.values()):
            return "the join did not see every branch's output"
        return None


GRAPHS: dict[str, list[Graph]] = {
    "wide": [Graph("wide-1k", "wide", 1_000), Graph("wide-10k", "wide", 10_000)],
    "long": [Graph("long-100", "long", 100), Graph("long-1k", "long", 1_000)],
}
SMOKE_GRAPHS: dict[str, list[Graph]] = {
    "wide": [Graph("wide-smoke", "wide", 200)],
    "long": [Graph("long-smoke", "long", 50)],
}


@dataclass
class GraphResult:
    graph: str
    nodes: int
    hops: int
    register_ms: float = 0.0
    execute_ms: float = 0.0
    snapshot_bytes: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def us_per_node(self) -> float:
        return self.execute_ms * 1000 / self.nodes

    @property
    def ms_per_hop(self) -> float:
        return self.execute_ms / self.hops

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "us_per_node": round(self.us_per_node, 1), "ms_per_hop": round(self.ms_per_hop, 3)}


async def run_graph(base_url: str, redis: aioredis.Redis, graph: Graph, partitions: int = 1) -> GraphResult:
    """Run ``graph`` once; ``redis`` (closed at the end) reads its log."""
    result = GraphResult(graph.name, graph.nodes, graph.hops)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client:
            started = time.perf_counter()
            response = await client.post("/api/workflows", json=graph.definition())
            result.register_ms = (time.perf_counter() - started) * 1000
            if response.status_code not in (200, 201):
                result.error = f"POST /api/workflows: {response.status_code} {response.text[:300]}"
                return result
            value = {"graph": graph.name}
            response = await client.post(f"/api/workflows/{graph.workflow_id}/execute", json={"input": value})
            if response.status_code != 202:
                result.error = f"POST execute: {response.status_code} {response.text[:300]}"
                return result
            execution_id = response.json()["executionId"]
            keys = for_execution(execution_id, partitions)
            first, last = await _wait_finished(redis, keys.log(execution_id))
            if last is None or first is None:
                result.error = f"{execution_id} did not finish in {TIMEOUT_S:.0f} s"
                return result
            result.execute_ms = float(last.at - first.at)
            result.snapshot_bytes = int(await redis.hstrlen(keys.snapshot(execution_id), "s"))
            execution = (await client.get(f"/api/executions/{execution_id}")).json()
            result.error = graph.check(execution, value)
    finally:
        await redis.aclose()
    return result


async def _wait_finished(redis: aioredis.Redis, log_key: str) -> tuple[Any, Any]:
    """The first and the last envelope of the log once the last one ends the execution (None: not in time)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        tail = await redis.lindex(log_key, -1)
        if tail is not None:
            last = codec.decode_envelope(tail)
            if type(last.event).__struct_config__.tag in ("execution.completed", "execution.failed"):
                return codec.decode_envelope(await redis.lindex(log_key, 0)), last
        await asyncio.sleep(0.02)
    return None, None
