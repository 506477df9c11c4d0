"""Triggers through the real system: the README's signed webhook with curl and openssl, and a cron schedule of
every second fired by two scheduler processes at once."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from spane.embedded import free_port

from .conftest import System, start_spane, stop_process
from .support import post_workflow, unique, wait_final, wait_listed

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def readme_block(section: str, index: int) -> str:
    text = README.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```bash\n(.*?)```", text, re.S)
    return blocks[index]


def run_bash(script: str, system: System) -> list[str]:
    script = script.replace("localhost:8000", system.url)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.replace("}{", "}\n{").splitlines() if line.strip()]


def test_the_readme_signed_webhook_starts_the_workflow_once(system: System, api: httpx.Client) -> None:
    api.delete("/api/workflows/on-order")  # a rerun against the same system starts afresh
    script = readme_block("Triggers: webhooks and cron schedules", 0)
    saved, accepted = (json.loads(line) for line in run_bash(script, system))
    assert saved["workflowId"] == "on-order"
    (execution_id,) = accepted["executionIds"]
    assert wait_final(api, execution_id)["output"] == {"orderId": 42}
    # The same delivery again (same Idempotency-Key): nothing new starts.
    _, again = (json.loads(line) for line in run_bash(script, system))
    assert again["executionIds"] == [execution_id]
    # The signature guards it: a forged one is refused.
    forged = api.post("/api/webhooks/shop/orders", json={"orderId": 43}, headers={"X-Spane-Signature": "sha256=00"})
    assert forged.status_code == 401


def tick_of(execution_id: str) -> int:
    """The epoch ms in a ULID's first ten characters."""
    value = 0
    for char in execution_id[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_two_scheduler_processes_fire_a_schedule_of_every_second_once_per_tick(
    system: System, api: httpx.Client
) -> None:
    env = {
        **system.env,
        "SPANE_REDIS_URL": system.redis_url,
        "SPANE_DATABASE_URL": system.database_url,
        "SPANE_PORT": str(free_port()),
    }
    second = start_spane(["scheduler"], env, system.log.with_name("e2e-second-scheduler.log"))  # besides spane dev's
    try:
        time.sleep(1.0)  # let it start
        wf = unique("every-second")
        every_second = {"type": "schedule", "config": {"cron": "* * * * * *", "input": {"tick": True}}}
        post_workflow(api, {"id": wf, "name": "Every second", "nodes": [{"id": "a", "type": "transform"}],
                            "triggers": [every_second]})  # fmt: skip
        time.sleep(5.0)
        assert api.delete(f"/api/workflows/{wf}").status_code == 204  # stops the schedule at once
        assert second.poll() is None, "the second scheduler died"
    finally:
        stop_process(second)
    time.sleep(1.0)
    wait_listed(api, {"workflowId": wf}, 4)
    time.sleep(1.0)  # the projector catches up with the last ones
    page = api.get("/api/executions", params={"workflowId": wf, "limit": 100}).json()
    ticks = sorted(tick_of(item["executionId"]) for item in page["items"])
    # One execution per tick: whole seconds, each once, ~5 in 5 s (not ~10 from two schedulers). A pass of a
    # scheduler delayed by a loaded machine may skip a tick (only the latest missed one runs), hence the range.
    assert all(t % 1000 == 0 for t in ticks)
    assert len(set(ticks)) == len(ticks)
    assert 3 <= len(ticks) <= 6, ticks
    assert wait_final(api, page["items"][0]["executionId"])["input"] == {"tick": True}
