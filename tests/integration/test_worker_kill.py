"""THE KILL TEST: a worker process is SIGKILLed mid-run; another worker reclaims its tasks after the visibility
timeout, every execution completes, and every node's result is recorded exactly once."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from spane_core.keys import WORKER_GROUP, for_execution
from spane_core.state import ExecutionStatus, NodeStatus

from . import kill_plugin  # noqa: F401  (registers the "slow" node type for the in-process worker)
from .worker_support import engine, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
VISIBILITY_MS = 1000
EXECUTIONS = 40


def start_worker_process(redis_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPANE_REDIS_URL": redis_url,
        "SPANE_DATABASE_URL": database_url,  # a worker stores large outputs there
        "SPANE_TASK_VISIBILITY_TIMEOUT_MS": str(VISIBILITY_MS),
        "SPANE_PLUGINS": "kill_plugin",
        "SPANE_CONSUMER_NAME": "doomed-worker",
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p),
    }
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "spane_worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_killing_a_worker_mid_run_loses_nothing_and_records_each_result_once(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    async with engine(redis_url, task_visibility_timeout_ms=VISIBILITY_MS, consumer_name="survivor") as e:
        nodes: list[dict[str, Any]] = [{"id": "a", "type": "slow"}]
        nodes += [{"id": f"b{i}", "type": "slow", "inputs": ["a"]} for i in range(4)]
        nodes += [{"id": "c", "type": "slow", "inputs": [f"b{i}" for i in range(4)]}]
        wf = await e.register("kill", nodes)
        ids = await e.start(wf, {}, count=EXECUTIONS)

        log = tmp_path / "worker.log"
        proc = start_worker_process(redis_url, database_url, log)
        try:
            # Kill it once it is well into the run: some nodes done, and some running right now.
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, f"the worker process exited early:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"the worker process made no progress:\n{log.read_text()}"
                states = [s for s in await e.store.load_many(ids) if s is not None]
                nodes_done = sum(n.status is NodeStatus.COMPLETED for s in states for n in s.nodes.values())
                running_now = sum(n.status is NodeStatus.RUNNING for s in states for n in s.nodes.values())
                if nodes_done >= EXECUTIONS and running_now >= 10:
                    break
                await asyncio.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert not all(s.status is ExecutionStatus.COMPLETED for s in states), "killed too late to prove anything"

        async with running(e, scheduler=False):
            finished = await e.wait_finished(ids, within=60)
        assert [s.status for s in finished] == [ExecutionStatus.COMPLETED] * EXECUTIONS

        restarted = 0
        for eid in ids:
            log_events = await e.store.read_log(eid)
            completed = collections.Counter(str(getattr(env.event, "node_id", "")) for env in log_events
                                            if env.type == "node.completed")  # fmt: skip
            assert completed == collections.Counter(n["id"] for n in nodes), eid
            started = collections.Counter(str(getattr(env.event, "node_id", "")) for env in log_events
                                          if env.type == "node.started")  # fmt: skip
            restarted += sum(count - 1 for count in started.values())
            await e.replayed(next(s for s in finished if s.execution_id == eid))
        assert restarted >= 1, "no task of the killed worker was reclaimed"
        pending = await e.redis.xpending(for_execution(ids[0], 1).tasks, WORKER_GROUP)
        assert pending["pending"] == 0
