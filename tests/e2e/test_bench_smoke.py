"""The benchmark keeps working: its smoke mode (W=5 per workload) runs a fresh system and checks correctness only.

It asserts no speed: the figures of a full run are in bench/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_bench(tmp_path: Path, *args: str, timeout: float) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out), *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"python -m bench exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    )
    document: dict[str, Any] = json.loads(out.read_text())
    assert document["correct"], document["failures"]
    return document


def test_spane_smoke(tmp_path: Path) -> None:
    document = run_bench(tmp_path, "--no-celery", timeout=120)
    results = {(r["workload"], r["label"]): r for r in document["spane"]}
    workloads = ("diamond", "chain", "fanout", "diamond-100k", "diamond-limited", "fanout-burst")
    assert set(results) == {*((w, "") for w in workloads), ("chain", "low load")}
    for result in results.values():
        assert result["ok"], result["errors"]
        assert result["completed"] == result["executions"] > 0
        assert result["redis_commands_per_node"] > 0
        assert result["lag_ms"]["n"] == result["executions"]
        assert all(mb > 0 for mb in result["rss_mb"].values())
    assert results[("chain", "low load")]["hop_mean_ms"]["n"] > 0
    assert document["celery"] == []


def test_spane_smoke_on_a_redis_cluster(tmp_path: Path) -> None:
    document = run_bench(tmp_path, "--no-celery", "--redis-cluster", "--workloads", "diamond", timeout=120)
    [result] = document["spane"]
    assert result["ok"], result["errors"]
    assert result["completed"] == result["executions"] > 0
    assert {"redis-1", "redis-2", "redis-3"} <= set(result["rss_mb"])  # the three masters, each accounted
    assert "cluster of 3 masters, 12 partitions" in document["meta"]["redis"]


def test_celery_smoke(tmp_path: Path) -> None:
    document = run_bench(tmp_path, "--no-spane", timeout=90)
    assert {r["workload"] for r in document["celery"]} == {"diamond", "chain", "fanout", "diamond-100k", "fanout-burst"}
    for result in document["celery"]:
        assert result["ok"], result["errors"]
        assert result["completed"] == result["executions"] > 0
    assert document["spane"] == []


def test_projector_bench_smoke() -> None:
    """``python -m bench.projector`` folds its logs into a fresh Postgres and checks every execution completed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.projector", "--workload", "diamond", "-E", "5", "-B", "7"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "events/s" in done.stdout
