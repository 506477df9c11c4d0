"""The client commands of `spane` run for real against a real `spane dev` (SPANE_URL names it)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import System
from tests.e2e.support import execute, post_workflow, run_failing_limited_workflow, unique, wait_final

pytestmark = pytest.mark.e2e


def spane(
    system: System, *args: str, url: str | None = None, columns: int | None = 200
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPANE_URL": url or system.url, "COLUMNS": str(columns)}
    env.pop("SPANE_API_TOKEN", None)
    if columns is None:
        env.pop("COLUMNS")
    return subprocess.run([sys.executable, "-m", "spane", *args], env=env, capture_output=True, text=True, timeout=120)


def _diamond(workflow_id: str) -> dict[str, object]:
    return {
        "id": workflow_id,
        "name": "CLI diamond",
        "nodes": [
            {"id": "start", "type": "transform", "outputs": ["a", "b"]},
            {"id": "a", "type": "transform", "config": {"expression": "name"}, "outputs": ["join"]},
            {"id": "b", "type": "delay", "config": {"ms": 300}, "outputs": ["join"]},
            {"id": "join", "type": "transform"},
        ],
    }


def test_tables_piped_into_another_command_are_not_cut_to_80_columns(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-piped-tables-keep-every-character-of-a-long-id")
    name = "A workflow whose name is long enough to be cut in an 80-column table"
    post_workflow(api, {**_diamond(workflow_id), "name": name})
    listed = spane(system, "workflows", "ls", columns=None)  # stdout is a pipe, and no COLUMNS says a width
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if workflow_id in line]
    assert name in row


def test_apply_shows_a_new_version_then_unchanged_and_422_problems_with_their_paths(
    system: System, tmp_path: Path
) -> None:
    workflow_id = unique("cli-apply")
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(_diamond(workflow_id)))
    first = spane(system, "apply", "-f", str(path))
    assert first.returncode == 0, first.stderr
    assert f"workflow {workflow_id}: version 1 created" in first.stdout
    again = spane(system, "apply", "-f", str(path))
    assert f"workflow {workflow_id}: unchanged (version 1)" in again.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"id": workflow_id, "name": "x", "nodes": [{"id": "a", "type": "nope", "outputs": ["z"]}]})
    )
    refused = spane(system, "apply", "-f", str(bad))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith("spane: 422")
    assert any(line.strip().startswith("nodes[0]") for line in lines[1:]), refused.stderr


def test_run_wait_prints_the_output_and_exits_0_or_1_by_the_outcome(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-run")
    post_workflow(api, _diamond(workflow_id))
    done = spane(system, "run", workflow_id, "--input", '{"name": "ada"}', "--wait")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": "ada", "b": {"name": "ada"}}
    assert "4/4" in done.stderr  # the progress bar ends at every node done
    assert "completed" in done.stderr

    failing = unique("cli-fail")
    post_workflow(api, {"id": failing, "name": "fails", "nodes": [{"id": "x", "type": "always-fails"}]})
    failed = spane(system, "run", failing, "--wait")
    assert failed.returncode == 1
    assert "failed" in failed.stderr and "this node always fails" in failed.stderr

    started = spane(system, "run", workflow_id, "-i", '{"name": "bob"}')
    assert started.returncode == 0
    assert wait_final(api, started.stdout.strip())["status"] == "completed"


def test_executions_ls_get_and_watch(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-ls")
    post_workflow(api, _diamond(workflow_id))
    execution_id = execute(api, workflow_id, {"name": "ada"})
    watched = spane(system, "watch", execution_id)
    assert watched.returncode == 0, watched.stderr
    assert "execution.completed" in watched.stdout
    assert "node.completed" in watched.stdout and "join" in watched.stdout
    wait_final(api, execution_id)

    listed = spane(system, "executions", "ls", "--workflow", workflow_id)
    assert listed.returncode == 0 and execution_id in listed.stdout and "completed" in listed.stdout
    shown = spane(system, "executions", "get", execution_id)
    assert shown.returncode == 0 and "join" in shown.stdout and '"ada"' in shown.stdout
    raw = json.loads(spane(system, "executions", "get", execution_id, "--json").stdout)
    assert raw["executionId"] == execution_id and raw["status"] == "completed"


def test_pause_resume_cancel_and_a_refusal_is_one_line(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-steer")
    post_workflow(
        api, {"id": workflow_id, "name": "slow", "nodes": [{"id": "d", "type": "delay", "config": {"ms": 60000}}]}
    )
    execution_id = execute(api, workflow_id, {})
    paused = spane(system, "pause", execution_id)
    assert paused.returncode == 0 and "paused" in paused.stdout
    resumed = spane(system, "resume", execution_id)
    assert resumed.returncode == 0 and "running" in resumed.stdout
    cancelled = spane(system, "cancel", execution_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    refused = spane(system, "resume", execution_id)
    assert refused.returncode == 1
    assert refused.stderr.startswith("spane: 409") and len(refused.stderr.strip().splitlines()) == 1

    unknown = spane(system, "executions", "get", "no-such-execution")
    assert unknown.returncode == 1 and unknown.stderr.startswith("spane: 404")


def test_signal_completes_the_waiting_node_with_its_data_and_a_wrong_one_is_one_line(
    system: System, api: httpx.Client
) -> None:
    workflow_id = unique("cli-signal")
    nodes = [{"id": "approve", "type": "wait", "config": {"signal": "approval"}}]
    post_workflow(api, {"id": workflow_id, "name": "approval", "nodes": nodes})
    execution_id = execute(api, workflow_id, {})
    deadline = time.monotonic() + 20
    while api.get(f"/api/executions/{execution_id}").json()["nodes"]["approve"]["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    wrong = spane(system, "signal", execution_id, "payment")
    assert wrong.returncode == 1 and wrong.stderr.startswith("spane: 409")
    assert "it waits for 'approval'" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    sent = spane(system, "signal", execution_id, "approval", "--data", '{"ok": true}')
    assert sent.returncode == 0 and f"execution {execution_id}: signal approval sent" in sent.stdout
    assert wait_final(api, execution_id)["output"] == {"ok": True}


def test_get_names_a_sub_workflow_s_child_which_takes_the_signal(system: System, api: httpx.Client) -> None:
    child_id, parent_id = unique("cli-child"), unique("cli-parent")
    wait = {"id": "w", "type": "wait", "config": {"signal": "go"}}
    post_workflow(api, {"id": child_id, "name": "c", "nodes": [wait]})
    nodes = [{"id": "sub", "type": "sub-workflow", "config": {"workflowId": child_id}}]
    post_workflow(api, {"id": parent_id, "name": "p", "nodes": nodes})
    parent = execute(api, parent_id, {})
    deadline = time.monotonic() + 20
    while not (children := api.get(f"/api/executions/{parent}").json()["children"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (child,) = children["sub"]
    shown = spane(system, "executions", "get", parent)
    assert shown.returncode == 0 and f"children of sub: {child}" in shown.stdout
    while api.get(f"/api/executions/{child}").json()["nodes"].get("w", {}).get("status") != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert spane(system, "signal", child, "go", "--data", "7").returncode == 0
    assert wait_final(api, parent)["output"] == 7


def test_rerun_from_a_node_keeps_the_others_outputs_and_waits(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-rerun")
    post_workflow(api, _diamond(workflow_id))
    earlier = execute(api, workflow_id, {"name": "ada"})
    assert wait_final(api, earlier)["status"] == "completed"

    rerun = spane(system, "rerun", earlier, "--from-node", "b", "--wait")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout) == {"a": "ada", "b": {"name": "ada"}}
    listed = api.get("/api/executions", params={"workflowId": workflow_id}).json()["items"]
    (new_id,) = [e["executionId"] for e in listed if e["executionId"] != earlier]
    rerun_of = api.get(f"/api/executions/{new_id}").json()
    assert rerun_of["rerunOf"] == earlier
    history = api.get(f"/api/executions/{new_id}/history").json()["events"]
    reused = {e["nodeId"] for e in history if e["type"] == "node.completed" and e.get("reusedFrom") == earlier}
    assert reused == {"start", "a"}  # only b and what follows ran again

    with_input = spane(system, "rerun", earlier, "--input", '{"name": "bob"}')
    assert with_input.returncode == 0 and wait_final(api, with_input.stdout.strip())["output"]["a"] == "bob"
    unknown = spane(system, "rerun", "no-such-execution")
    assert unknown.returncode == 1 and unknown.stderr.startswith("spane: 404")


def test_breakers_rate_limits_and_schedules_are_listed_and_a_breaker_reset(system: System, api: httpx.Client) -> None:
    workflow_id = unique("cli-ops")
    host = "127.0.0.77"  # a host of this test alone
    run_failing_limited_workflow(api, workflow_id, host, 100)

    listed = spane(system, "breakers", "ls")
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if f"http:{host}" in row]
    assert "open" in line
    reset = spane(system, "breakers", "reset", f"http:{host}")
    assert reset.returncode == 0 and reset.stdout.strip() == f"breaker http:{host}: closed"
    (line,) = [row for row in spane(system, "breakers", "ls").stdout.splitlines() if host in row]
    assert "closed" in line

    buckets = spane(system, "rate-limits", "ls")
    assert buckets.returncode == 0 and f"node:{workflow_id}/call" in buckets.stdout
    assert "100 per 1000 ms" in buckets.stdout
    schedules = spane(system, "schedules", "ls")
    assert schedules.returncode == 0
    (row,) = [r for r in schedules.stdout.splitlines() if workflow_id in r]
    assert "0 0 1 1 *" in row and "Europe/Paris" in row


def test_an_unreachable_server_is_one_readable_line(system: System) -> None:
    done = spane(system, "executions", "ls", url="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("spane: no answer from http://127.0.0.1:9")


def test_dlq_ls_retry_with_edited_input_and_rm(system: System, api: httpx.Client) -> None:
    if api.get("/api/dlq").status_code == 404:
        pytest.skip("this build has no dead-letter API (/api/dlq, issue 8)")
    workflow_id = unique("cli-dlq")
    # Node "a": its dead letters' ids hold ":a:", which a terminal library would print as an emoji.
    post_workflow(api, {"id": workflow_id, "name": "DLQ", "nodes": [{"id": "a", "type": "needs-ok"}]})
    first = execute(api, workflow_id, {"ok": False})
    second = execute(api, workflow_id, {"ok": False})
    assert wait_final(api, first)["status"] == wait_final(api, second)["status"] == "failed"
    entries = {d["executionId"]: d["id"] for d in _dead_letters(api, workflow_id, 2)}

    listed = spane(system, "dlq", "ls", "--workflow", workflow_id, columns=80)
    assert listed.returncode == 0 and "is not" in listed.stdout
    assert all(dead_letter_id in listed.stdout for dead_letter_id in entries.values())  # whole, to be copied
    retried = spane(system, "dlq", "retry", entries[first], "--input", '{"ok": true}')
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"dead letter {entries[first]}: retried"
    assert wait_final(api, first)["status"] == "completed"
    removed = spane(system, "dlq", "rm", entries[second])
    assert removed.returncode == 0, removed.stderr


def _dead_letters(api: httpx.Client, workflow_id: str, count: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items: list[dict[str, str]] = api.get("/api/dlq", params={"workflowId": workflow_id}).json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.05)
    raise AssertionError(f"{count} dead letters of {workflow_id} were not listed")


def test_the_readme_client_example_runs(system: System) -> None:
    section = (
        (Path(__file__).resolve().parents[2] / "README.md").read_text().split("## The console and the command line")[1]
    )
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "SPANE_URL": system.url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("execution.started")
    assert lines[-2].startswith("execution.completed")
    # The output as a dict: its key order depends on which store answered (Postgres's jsonb orders keys its way).
    assert ast.literal_eval(lines[-1]) == {"name": "ada", "hi": 1}
