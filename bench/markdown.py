"""``python -m bench.markdown results.json``: the tables of a run's JSON as Markdown (for bench/RESULTS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.workloads import ORDER


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _name(r: dict[str, Any]) -> str:
    return f"{r['workload']} ({r['label']})" if r["label"] else r["workload"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _order(r: dict[str, Any]) -> tuple[int, str, bool]:
    return (ORDER.index(r["workload"]) if r["workload"] in ORDER else 9, r["label"], r["system"] != "spane")


def _short(name: str) -> str:
    short = {"projector": "proj", "scheduler": "sched", "celery-main": "main", "postgres": "pg"}
    return short.get(name, name.replace("worker-", "w").replace("celery-pool-", "pool"))


def render(doc: dict[str, Any]) -> str:
    rows = sorted([*doc["spane"], *doc["celery"]], key=_order)
    out = []
    out.append(
        _table(
            [
                "workload",
                "system",
                "W/C",
                "exec/s",
                "node/s",
                "e2e p50 ms",
                "p95",
                "p99",
                "hop p50 ms",
                "lag p99 ms",
                "CPU % ours/others",
                "check",
            ],
            [
                [
                    _name(r),
                    r["system"],
                    f"{r['executions']}/{r['concurrency']}",
                    _f(r["executions_per_s"]),
                    _f(r["nodes_per_s"], 0),
                    _f(r["latency_ms"].get("p50")),
                    _f(r["latency_ms"].get("p95")),
                    _f(r["latency_ms"].get("p99")),
                    _f((r["hop_mean_ms"] or {}).get("p50"), 2),
                    _f((r["lag_ms"] or {}).get("p99")),
                    f"{_f(r['cpu'].get('ours_pct'), 0)}/{_f(r['cpu'].get('others_pct'), 0)}",
                    "ok" if r["ok"] else f"{r['error_count']} wrong",
                ]
                for r in rows
            ],
        )
    )
    every = [*rows, *doc["scaling"]]
    out.append(
        _table(
            [
                "workload",
                "system",
                "Redis cmd /node",
                "Redis KB in/out /node",
                "Redis KB kept /exec",
                "pg write tx /exec",
            ],
            [
                [
                    _name(r),
                    r["system"],
                    _f(r["redis_commands_per_node"], 2),
                    f"{_f(r['redis_kb_per_node'].get('in'))}/{_f(r['redis_kb_per_node'].get('out'))}",
                    _f(r["redis_memory_kb_per_execution"]),
                    _f(r["postgres"].get("write_transactions_per_execution"), 2) if r["postgres"] else "-",
                ]
                for r in every
            ],
        )
    )
    out.append(
        _table(
            ["workload", "system", "peak RSS MB", "CPU % of one core"],
            [
                [
                    _name(r),
                    r["system"],
                    " · ".join(f"{_short(n)} {mb:.0f}" for n, mb in r["rss_mb"].items()),
                    " · ".join(f"{_short(n)} {p:.0f}" for n, p in r["cpu"].get("per_process_pct_of_core", {}).items()),
                ]
                for r in every
            ],
        )
    )
    if doc["scaling"]:
        base = doc["scaling"][0]["nodes_per_s"] or 1
        out.append(
            _table(
                ["workers", "exec/s", "node/s", "vs 1 worker", "e2e p50 ms", "p99 ms", "lag p99 ms"],
                [
                    [
                        str(r["workers"]),
                        _f(r["executions_per_s"]),
                        _f(r["nodes_per_s"], 0),
                        f"{r['nodes_per_s'] / base:.2f}x",
                        _f(r["latency_ms"].get("p50")),
                        _f(r["latency_ms"].get("p99")),
                        _f((r["lag_ms"] or {}).get("p99")),
                    ]
                    for r in doc["scaling"]
                ],
            )
        )
    if doc["ratios"]:
        keys = ("nodes_per_s", "executions_per_s", "latency_p50", "latency_p99", "redis_commands_per_node")
        out.append(
            _table(
                ["workload", "node/s", "exec/s", "e2e p50", "e2e p99", "Redis cmd/node"],
                [[r["workload"], *(f"{r[k]:.2f}x" if r[k] is not None else "-" for k in keys)] for r in doc["ratios"]],
            )
        )
    if doc["targets"]:
        out.append(
            _table(
                ["target", "measured", "goal", "met"],
                [
                    [
                        t["target"],
                        "-" if t["value"] is None else f"{t['value']:g} {t['unit']}",
                        t["goal"],
                        {True: "yes", False: "**no**", None: "-"}[t["passed"]],
                    ]
                    for t in doc["targets"]
                ],
            )
        )
    return "\n\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.markdown RESULTS.json")
    print(render(json.loads(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
