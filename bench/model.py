"""What one workload run measured, for either system, and the arithmetic on it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float | int | None]:
    """Count, p50/p95/p99 and max, rounded to 0.01 (the unit is the caller's, here always ms)."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


@dataclass
class Sample:
    """One execution: when it was submitted and when it completed (epoch seconds, both on this machine's clock)."""

    run: int
    key: str = ""  # execution id (SPANE) or final task id (Celery)
    submitted: float = 0.0
    done: float | None = None  # completion as recorded by the system (log event / result's date_done)
    error: str | None = None

    @property
    def latency_ms(self) -> float | None:
        return None if self.done is None else (self.done - self.submitted) * 1000


@dataclass
class WorkloadResult:
    system: str  # "spane" | "celery"
    workload: str
    executions: int
    concurrency: int
    nodes_per_execution: int
    workers: int
    elapsed_s: float = 0.0  # first submit -> last completion
    completed: int = 0
    errors: list[str] = field(default_factory=list)  # up to a few messages; error_count has them all
    error_count: int = 0
    latency_ms: dict[str, Any] = field(default_factory=dict)  # submit -> completed
    hop_ms: dict[str, Any] = field(default_factory=dict)  # chain only: node completed -> next node completed
    hop_mean_ms: dict[str, Any] = field(default_factory=dict)  # chain only: per execution (last - first) / hops
    lag_ms: dict[str, Any] = field(default_factory=dict)  # SPANE only: completion in the log -> visible in GET
    rss_mb: dict[str, float] = field(default_factory=dict)  # peak per process over the workload
    redis_commands: dict[str, int] = field(default_factory=dict)  # the system's commands over the window
    redis_commands_per_node: float | None = None
    redis_kb_per_node: dict[str, float] = field(default_factory=dict)  # "in" (written to Redis), "out" (read)
    redis_memory_kb_per_execution: float | None = None  # growth of Redis's used memory over the window
    postgres: dict[str, Any] = field(default_factory=dict)  # SPANE: write transactions and WAL over the window
    cpu: dict[str, Any] = field(default_factory=dict)  # % of the machine: ours, others', busy (see CpuAccount)
    notes: list[str] = field(default_factory=list)
    label: str = ""  # e.g. "low load" or "4 workers"

    @property
    def executions_per_s(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def nodes_per_s(self) -> float:
        return self.executions_per_s * self.nodes_per_execution

    @property
    def ok(self) -> bool:
        return self.error_count == 0 and self.completed == self.executions

    def fail(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 5:
            self.errors.append(message)

    def set_latencies(self, samples: list[Sample]) -> None:
        done = [s for s in samples if s.done is not None and s.error is None]
        self.completed = len(done)
        if done:
            first = min(s.submitted for s in samples)
            last = max(s.done for s in done if s.done is not None)
            self.elapsed_s = max(last - first, 1e-9)
        self.latency_ms = summary([s.latency_ms for s in done if s.latency_ms is not None])

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["executions_per_s"] = round(self.executions_per_s, 1)
        out["nodes_per_s"] = round(self.nodes_per_s, 1)
        out["ok"] = self.ok
        out["redis_commands"] = dict(list(self.redis_commands.items())[:15])
        return out
