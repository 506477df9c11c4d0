"""The printed tables, the SPANE/Celery ratios, the issue's targets, and the JSON document of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.graphs import GraphResult
from bench.model import WorkloadResult
from bench.workloads import ORDER

TARGET_NODE_RATIO = 10.0
TARGET_HOP_P50_MS = 2.0
TARGET_LAG_P99_MS = 1000.0
TARGET_WORKER_RSS_MB = 150.0
TARGET_BURST_P99_MS = 2000.0


@dataclass
class Run:
    meta: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    spane: list[WorkloadResult] = field(default_factory=list)
    celery: list[WorkloadResult] = field(default_factory=list)
    scaling: list[WorkloadResult] = field(default_factory=list)
    graphs: list[GraphResult] = field(default_factory=list)  # wide and long: one execution of a big graph each
    failures: list[str] = field(default_factory=list)  # what stopped a phase (a service that died, ...)

    def main(self, system: str, workload: str) -> WorkloadResult | None:
        for r in self.spane if system == "spane" else self.celery:
            if r.workload == workload and not r.label:
                return r
        return None

    def low_load(self, system: str) -> WorkloadResult | None:
        for r in self.spane if system == "spane" else self.celery:
            if r.label == "low load":
                return r
        return None

    @property
    def correct(self) -> bool:
        return (
            not self.failures
            and all(r.ok for r in [*self.spane, *self.celery, *self.scaling])
            and all(g.ok for g in self.graphs)
        )

    def ratios(self) -> list[dict[str, Any]]:
        out = []
        for s in self.spane:
            if s.label:
                continue
            c = self.main("celery", s.workload)
            if c is None:
                continue
            out.append(
                {
                    "workload": s.workload,
                    "nodes_per_s": _ratio(s.nodes_per_s, c.nodes_per_s),
                    "executions_per_s": _ratio(s.executions_per_s, c.executions_per_s),
                    "latency_p50": _ratio(s.latency_ms.get("p50"), c.latency_ms.get("p50")),
                    "latency_p99": _ratio(s.latency_ms.get("p99"), c.latency_ms.get("p99")),
                    "redis_commands_per_node": _ratio(s.redis_commands_per_node, c.redis_commands_per_node),
                }
            )
        return out

    def targets(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        ratios = {r["workload"]: r for r in self.ratios()}
        for name in ("diamond", "fanout"):
            got = ratios.get(name, {}).get("nodes_per_s")
            rows.append(_target(f"node executions/s SPANE/Celery on {name}", got, f">= {TARGET_NODE_RATIO:g}x",
                                None if got is None else got >= TARGET_NODE_RATIO, "x"))  # fmt: skip
        low = self.low_load("spane")
        hop = low.hop_mean_ms.get("p50") if low else None
        rows.append(_target("chain hop p50 at low load", hop, f"<= {TARGET_HOP_P50_MS:g} ms",
                            None if hop is None else hop <= TARGET_HOP_P50_MS, " ms"))  # fmt: skip
        lags = [r.lag_ms.get("p99") for r in self.spane if not r.label and r.lag_ms.get("p99") is not None]
        worst = max(lags) if lags else None  # type: ignore[type-var]
        rows.append(_target("projector lag p99 at full load (worst workload)", worst, f"<= {TARGET_LAG_P99_MS:g} ms",
                            None if worst is None else worst <= TARGET_LAG_P99_MS, " ms"))  # fmt: skip
        burst = self.main("spane", "fanout-burst")
        p99 = burst.latency_ms.get("p99") if burst else None
        rows.append(_target("fan-out burst e2e p99 (50 x 1->100->1 at once)", p99, f"< {TARGET_BURST_P99_MS:g} ms",
                            None if p99 is None else p99 < TARGET_BURST_P99_MS, " ms"))  # fmt: skip
        rss = [mb for r in [*self.spane, *self.scaling] for n, mb in r.rss_mb.items() if n.startswith("worker")]
        top = max(rss) if rss else None
        rows.append(_target("peak RSS of each worker (worst)", top, f"< {TARGET_WORKER_RSS_MB:g} MB",
                            None if top is None else top < TARGET_WORKER_RSS_MB, " MB"))  # fmt: skip
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "config": self.config,
            "correct": self.correct,
            "failures": self.failures,
            "spane": [r.to_json() for r in self.spane],
            "celery": [r.to_json() for r in self.celery],
            "scaling": [r.to_json() for r in self.scaling],
            "graphs": [g.to_json() for g in self.graphs],
            "ratios": self.ratios(),
            "targets": self.targets(),
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def _target(name: str, value: float | None, goal: str, passed: bool | None, unit: str) -> dict[str, Any]:
    return {"target": name, "value": None if value is None else round(value, 2), "unit": unit.strip(),
            "goal": goal, "passed": passed}  # fmt: skip


def _f(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _rss(r: WorkloadResult) -> str:
    short = {"projector": "proj", "scheduler": "sched", "celery-main": "main", "redis": "redis"}
    parts = []
    for name, mb in r.rss_mb.items():
        label = short.get(name, name.replace("worker-", "w").replace("celery-pool-", "pool"))
        parts.append(f"{label} {mb:.0f}")
    return " ".join(parts)


def _name(r: WorkloadResult) -> str:
    return f"{r.workload} ({r.label})" if r.label else r.workload


def results_table(title: str, results: list[WorkloadResult]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("workload", "system", "W/C", "exec/s", "node/s", "e2e p50 ms", "p95", "p99", "hop p50 ms",
                   "lag p99 ms", "CPU % ours/others", "check"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("workload", "system") else "right")
    for r in results:
        hop = r.hop_mean_ms.get("p50") if r.hop_mean_ms else None
        check = "[green]ok[/]" if r.ok else f"[red]{r.error_count} bad[/]"
        table.add_row(
            _name(r),
            r.system,
            f"{r.executions}/{r.concurrency}",
            _f(r.executions_per_s),
            _f(r.nodes_per_s, 0),
            _f(r.latency_ms.get("p50")),
            _f(r.latency_ms.get("p95")),
            _f(r.latency_ms.get("p99")),
            _f(hop, 2),
            _f(r.lag_ms.get("p99")) if r.lag_ms else "-",
            f"{_f(r.cpu.get('ours_pct'), 0)}/{_f(r.cpu.get('others_pct'), 0)}" if r.cpu else "-",
            check,
        )
    return table


def _cpu(r: WorkloadResult) -> str:
    short = {"projector": "proj", "scheduler": "sched", "celery-main": "main", "postgres": "pg"}
    parts = []
    for name, pct in (r.cpu.get("per_process_pct_of_core") or {}).items():
        label = short.get(name, name.replace("worker-", "w").replace("celery-pool-", "pool"))
        parts.append(f"{label} {pct:.0f}")
    return " ".join(parts)


def cost_table(results: list[WorkloadResult]) -> Table:
    table = Table(title="What it cost", title_justify="left", header_style="bold")
    for column in ("workload", "system", "Redis cmd /node", "Redis KB in/out /node", "Redis KB kept /exec",
                   "pg write tx /exec"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("workload", "system") else "right")
    for r in results:
        table.add_row(
            _name(r),
            r.system,
            _f(r.redis_commands_per_node, 2),
            f"{_f(r.redis_kb_per_node.get('in'), 1)}/{_f(r.redis_kb_per_node.get('out'), 1)}"
            if r.redis_kb_per_node
            else "-",
            _f(r.redis_memory_kb_per_execution, 1),
            _f(r.postgres.get("write_transactions_per_execution"), 1) if r.postgres else "-",
        )
    return table


def process_table(results: list[WorkloadResult]) -> Table:
    table = Table(title="Per process (bench = the load generator)", title_justify="left", header_style="bold")
    table.add_column("workload", no_wrap=True)
    table.add_column("system")
    table.add_column("peak RSS MB", no_wrap=True)
    table.add_column("CPU % of one core", no_wrap=True)
    for r in results:
        table.add_row(_name(r), r.system, _rss(r), _cpu(r))
    return table


def print_run(run: Run, console: Console | None = None) -> None:
    console = console or Console()
    meta = run.meta
    console.print(
        f"[bold]SPANE benchmark[/] {meta.get('date', '')} on {meta.get('cpu_model', '?')} x{meta.get('cores', '?')}"
        f", {meta.get('memory_gb', '?')} GB; Redis {meta.get('redis', '?')}, Postgres {meta.get('postgres', '?')}"
        f", Celery {meta.get('celery', '?')}; commit {meta.get('commit', '?')}"
    )
    console.print("latencies in ms; hop p50 = median over executions of (last - first node completion) / hops")
    rows = sorted([*run.spane, *run.celery], key=lambda r: (_order(r.workload), r.label, r.system != "spane"))
    if rows:
        console.print(results_table("Workloads", rows))
        console.print(cost_table([*rows, *run.scaling]))
        console.print(process_table([*rows, *run.scaling]))
    if run.scaling:
        table = Table(title="Scaling: diamond with 1, 2 and 4 worker processes", title_justify="left")
        for column in ("workers", "exec/s", "node/s", "vs 1 worker", "e2e p50 ms", "p99 ms", "CPU ours/others %"):
            table.add_column(column, justify="right")
        base = run.scaling[0].nodes_per_s or None
        for r in run.scaling:
            table.add_row(str(r.workers), _f(r.executions_per_s), _f(r.nodes_per_s, 0),
                          f"{_f(r.nodes_per_s / base, 2)}x" if base else "-",
                          _f(r.latency_ms.get("p50")), _f(r.latency_ms.get("p99")),
                          f"{_f(r.cpu.get('ours_pct'), 0)}/{_f(r.cpu.get('others_pct'), 0)}")  # fmt: skip
        console.print(table)
    if run.graphs:
        console.print(graphs_table(run.graphs))
    ratios = run.ratios()
    if ratios:
        table = Table(title="SPANE / Celery (same run, same Redis)", title_justify="left")
        for column in ("workload", "node/s", "exec/s", "e2e p50", "e2e p99", "redis cmd/node"):
            table.add_column(column, justify="right")
        for r in ratios:
            table.add_row(r["workload"], *(f"{_f(r[k], 2)}x" if r[k] is not None else "-"
                                           for k in ("nodes_per_s", "executions_per_s", "latency_p50",
                                                     "latency_p99", "redis_commands_per_node")))  # fmt: skip
        console.print(table)
    if run.spane:
        table = Table(title="Targets of issues #3 and #13", title_justify="left")
        for column in ("target", "measured", "goal", "met"):
            table.add_column(column)
        for t in run.targets():
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[t["passed"]]
            value = "-" if t["value"] is None else f"{t['value']:g} {t['unit']}"
            table.add_row(t["target"], value, t["goal"], met)
        console.print(table)
    for r in [*run.spane, *run.celery, *run.scaling]:
        for error in r.errors:
            console.print(f"[red]{r.system} {r.workload} {r.label}: {error}[/]")
    for failure in run.failures:
        console.print(f"[red]{failure}[/]")
    console.print("[green]correct: every execution completed and every join saw every parent's output[/]"
                  if run.correct else "[red]NOT CORRECT: see above[/]")  # fmt: skip


def _order(workload: str) -> int:
    return ORDER.index(workload) if workload in ORDER else len(ORDER)


def graphs_table(graphs: list[GraphResult]) -> Table:
    table = Table(title="Big graphs: one execution each (wide 1 -> N -> 1, long: a chain)", title_justify="left")
    for column in ("graph", "nodes", "register ms", "execute ms", "us/node", "ms/hop", "snapshot KB", "ok"):
        table.add_column(column, justify="right")
    for g in graphs:
        ok = "yes" if g.ok else f"[red]{g.error}[/]"
        table.add_row(g.graph, f"{g.nodes:,}", _f(g.register_ms), _f(g.execute_ms, 0), _f(g.us_per_node, 0),
                      _f(g.ms_per_hop, 2), _f(g.snapshot_bytes / 1024), ok)  # fmt: skip
    return table
