"""A worker killed (kill -9) while a parent's child runs loses nothing: another worker reclaims the child's node,
the child completes, and its end resumes the parent. The services run as separate processes here, so that the
worker alone can be killed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spane.embedded import RedisServer, free_port

from .conftest import create_database, start_spane, stop_process
from .support import execute, post_workflow, unique, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Services:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, service: str, ready_url: str | None = None) -> subprocess.Popen[bytes]:
        proc = start_spane([service], self.env, self.logs / f"kill-{service}.log", ready_url=ready_url)
        self.procs.append(proc)
        return proc


@pytest.fixture
def services(postgres_server: str, servers_dir: Path) -> Iterator[tuple[Services, str]]:
    with RedisServer(servers_dir / "kill-redis", persistent=False) as redis:
        port = free_port()
        env = {
            "SPANE_REDIS_URL": redis.url,
            "SPANE_DATABASE_URL": create_database(postgres_server),
            "SPANE_PORT": str(port),
            "SPANE_TASK_VISIBILITY_TIMEOUT_MS": "1000",
            "SPANE_PLUGINS": "tests.e2e.plugins",
        }
        s = Services(env, servers_dir)
        try:
            url = f"http://127.0.0.1:{port}"
            s.start("api", ready_url=f"{url}/ready")
            for service in ("projector", "scheduler", "worker"):
                s.start(service)
            yield s, url
        finally:
            for proc in s.procs:
                stop_process(proc)


def node_status(api: httpx.Client, execution_id: str, node_id: str) -> str | None:
    response = api.get(f"/api/executions/{execution_id}")
    if response.status_code != 200:
        return None
    node = response.json()["nodes"].get(node_id)
    return None if node is None else str(node["status"])


def test_a_worker_killed_while_the_child_runs_leaves_the_parent_to_complete(services: tuple[Services, str]) -> None:
    s, url = services
    with httpx.Client(base_url=url, timeout=30.0) as api:
        child = unique("child")
        post_workflow(api, {"id": child, "name": "child", "nodes": [
            {"id": "work", "type": "sleep", "config": {"ms": 3000}},
        ]})  # fmt: skip
        parent = unique("parent")
        post_workflow(api, {"id": parent, "name": "parent", "nodes": [
            {"id": "call", "type": "sub-workflow", "config": {"workflowId": child}, "outputs": ["after"]},
            {"id": "after", "type": "transform", "config": {"set": {"after": True}}},
        ]})  # fmt: skip
        execution_id = execute(api, parent, {"n": 1})
        deadline = time.monotonic() + 30
        child_id = None
        while time.monotonic() < deadline:
            children = api.get(f"/api/executions/{execution_id}").json()["children"].get("call", [])
            if children and node_status(api, children[0], "work") == "running":
                child_id = children[0]
                break
            time.sleep(0.05)
        assert child_id is not None, "the child's node never ran"

        worker = s.procs[-1]
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        s.start("worker")

        body = wait_final(api, execution_id, timeout=60)
        assert body["status"] == "completed", body
        assert body["output"] == {"n": 1, "after": True}
        assert body["nodes"]["call"]["attempts"] == 1  # the parent's node waited once: the child was not restarted
        assert api.get(f"/api/executions/{execution_id}").json()["children"] == {"call": [child_id]}
        history = api.get(f"/api/executions/{child_id}/history").json()["events"]
        assert sum(1 for e in history if e["type"] == "node.started" and e["nodeId"] == "work") >= 2
        assert [e["type"] for e in history].count("execution.completed") == 1
