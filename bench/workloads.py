"""The workloads, as SPANE definitions and as shapes the Celery side turns into canvases, and their checks.

Every node is a no-op: a SPANE `transform` with an empty config (its output is its input) or the Celery `noop` task.
A node with several parents gets ``{"<parentId>": output, ...}`` in SPANE and the list of the parents' results in
Celery; the correctness check asks that every join saw every parent's output, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Shape = Literal["diamond", "chain", "fanout"]

FINAL_NODE_STATUSES = {"completed"}


@dataclass(frozen=True)
class Workload:
    name: str
    shape: Shape
    width: int  # parallel branches (diamond, fan-out) or links (chain)
    payload_bytes: int = 0  # size of the padding in the execution input
    description: str = ""
    branch_type: str = "transform"  # the node type of the parallel branches (SPANE only)
    spane_only: bool = False  # no Celery counterpart
    # A burst fixes its own size: all of its executions submitted at once (C = W), with no warm-up (issue #13).
    burst: int = 0

    @property
    def workflow_id(self) -> str:
        return f"bench-{self.name}"

    @property
    def nodes(self) -> int:
        """Node executions per execution of the workflow."""
        return self.width if self.shape == "chain" else self.width + 2

    @property
    def hops(self) -> int:
        """Sequential steps from submit to the last node."""
        return self.width if self.shape == "chain" else 3

    def branch_ids(self) -> list[str]:
        if self.shape == "chain":
            return [f"c{i + 1:02d}" for i in range(self.width)]
        return [f"b{i + 1:03d}" for i in range(self.width)]

    def definition(self) -> dict[str, Any]:
        """The SPANE workflow definition (API.md format)."""
        ids = self.branch_ids()
        if self.shape == "chain":
            nodes = [
                {"id": node, "type": "transform", "outputs": [ids[i + 1]] if i + 1 < len(ids) else []}
                for i, node in enumerate(ids)
            ]
        else:
            nodes = [{"id": "start", "type": "transform", "outputs": ids}]
            nodes += [{"id": node, "type": self.branch_type, "outputs": ["join"]} for node in ids]
            nodes.append({"id": "join", "type": "transform"})
        return {"id": self.workflow_id, "name": f"Benchmark: {self.description or self.name}", "nodes": nodes}

    def make_input(self, run: int) -> dict[str, Any]:
        value: dict[str, Any] = {"run": run, "workload": self.name}
        if self.payload_bytes:
            value["pad"] = "x" * self.payload_bytes
        return value

    def check_spane(self, execution: dict[str, Any], expected_input: Any) -> str | None:
        """Why a finished SPANE execution (GET /api/executions/{id}) is wrong, or None when it is right."""
        if execution.get("status") != "completed":
            return f"status {execution.get('status')!r}, error {execution.get('error')!r}"
        nodes = execution.get("nodes") or {}
        want = set(self.branch_ids()) if self.shape == "chain" else {"start", "join", *self.branch_ids()}
        if set(nodes) != want:
            return f"nodes {sorted(set(nodes) ^ want)[:5]} missing or unexpected"
        bad = [n for n, v in nodes.items() if v.get("status") not in FINAL_NODE_STATUSES]
        if bad:
            return f"nodes not completed: {bad[:5]}"
        output = execution.get("output")
        if self.shape == "chain":
            return None if output == expected_input else "the chain's output is not its input"
        return self._check_join(output, expected_input, "join output")

    def check_celery(self, result: Any, expected_input: Any) -> str | None:
        """Why a Celery canvas result is wrong: the chain's last value, or the join's list of parents' results."""
        if self.shape == "chain":
            return None if result == expected_input else "the chain's output is not its input"
        if not isinstance(result, list) or len(result) != self.width:
            got = len(result) if isinstance(result, list) else type(result).__name__
            return f"join saw {got} parent results, expected {self.width}"
        wrong = sum(1 for r in result if r != expected_input)
        return f"join saw {wrong} wrong parent results" if wrong else None

    def _check_join(self, output: Any, expected_input: Any, what: str) -> str | None:
        if not isinstance(output, dict):
            return f"{what} is {type(output).__name__}, expected an object of parent outputs"
        parents = set(self.branch_ids())
        if set(output) != parents:
            missing = sorted(parents - set(output))
            return f"{what} misses {len(missing)} parents (e.g. {missing[:3]}) or has extra keys"
        wrong = [p for p in parents if output[p] != expected_input]
        return f"{what}: {len(wrong)} parents' outputs differ from the input" if wrong else None


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("diamond", "diamond", 8, description="start -> 8 parallel -> join"),
        Workload("chain", "chain", 10, description="chain of 10"),
        Workload("fanout", "fanout", 100, description="start -> 100 parallel -> join"),
        Workload("diamond-100k", "diamond", 8, payload_bytes=100 * 1024, description="diamond, 100 KB input"),
        Workload(
            "diamond-limited",
            "diamond",
            8,
            branch_type="limited",
            spane_only=True,
            description="diamond whose 8 branches have a breaker, a rate limit and a concurrency limit per node type",
        ),
        Workload("fanout-burst", "fanout", 100, burst=50, description="50 fan-outs of 100 submitted at once"),
    )
}

DEFAULT_WORKLOADS = ("diamond", "chain", "fanout", "diamond-100k", "diamond-limited", "fanout-burst")
ORDER = DEFAULT_WORKLOADS  # the order of the rows in every table


def select(names: list[str] | None) -> list[Workload]:
    chosen = names or list(DEFAULT_WORKLOADS)
    unknown = [n for n in chosen if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    return [WORKLOADS[n] for n in chosen]
