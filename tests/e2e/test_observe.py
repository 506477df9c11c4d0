"""`spane dev` shows every service's metrics on the API's /metrics, and `spane replay` rebuilds an execution from
its log and finds the read model in agreement with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT, System
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def samples(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = api.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def replay(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPANE_REDIS_URL": system.redis_url, "SPANE_DATABASE_URL": system.database_url}
    return subprocess.run(
        [sys.executable, "-m", "spane", "replay", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_dev_metrics_show_every_service_and_replay_agrees(api: httpx.Client, system: System) -> None:
    wf = unique("observed")
    post_workflow(api, {"id": wf, "name": wf, "nodes": [
        {"id": "a", "type": "transform", "outputs": ["nap"]},
        {"id": "nap", "type": "delay", "config": {"ms": 10}},
    ]})  # fmt: skip
    eid = execute(api, wf, {"x": 1})
    assert wait_final(api, eid)["status"] == "completed"

    finished = ("spane_executions_finished_total", (("status", "completed"), ("workflow", wf)))
    deadline = time.monotonic() + 10
    while finished not in (seen := samples(api)):  # counted right after the read model's commit
        assert time.monotonic() < deadline, "the projector's count never showed on /metrics"
        time.sleep(0.05)
    assert seen[("spane_node_runs_total", (("status", "completed"), ("type", "transform")))] >= 1  # the worker
    assert seen[finished] == 1  # the projector
    assert seen[("spane_timers_fired_total", ())] >= 1  # the scheduler
    assert ("spane_projector_lag_events", ()) in seen and ("spane_dlq_entries", ()) in seen  # the shared state

    done = replay(system, eid, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["source"] == "redis" and data["status"] == "completed"
    assert data["disagreements"] == []
    assert [(r["nodeId"], r["status"]) for r in data["timeline"]] == [
        (None, "completed"), ("a", "completed"), ("nap", "completed"),
    ]  # fmt: skip

    first = json.loads(replay(system, eid, "--json", "--at", "1").stdout)
    assert (first["seq"], first["status"], first["state"].get("nodes", {})) == (1, "running", {})

    text = replay(system, eid)
    assert text.returncode == 0 and "the read model agrees with the log" in text.stdout
    assert replay(system, "no-such-execution").returncode == 1
