"""`spane dev` killed with SIGKILL leaves no Redis or Postgres behind, and the next `spane dev` finds its data."""

from __future__ import annotations

import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spane.embedded import free_port
from tests.e2e.conftest import start_spane, stop_process
from tests.e2e.support import execute, post_workflow, unique, wait_final
from tests.integration.orphan_support import wait_gone

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"),
]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spane-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _embedded_servers(data: Path) -> dict[str, tuple[int, int]]:
    """The (pid, port) of the embedded servers running on ``data``, from their pidfiles and Redis's log."""
    postmaster = (data / "postgres" / "postmaster.pid").read_text().splitlines()
    redis_port = re.findall(r"port=(\d+)", (data / "redis" / "redis.log").read_text())[-1]
    return {
        "redis-server": (int((data / "redis" / "redis.pid").read_text()), int(redis_port)),
        "postgres": (int(postmaster[0]), int(postmaster[3])),
    }


def test_a_killed_spane_dev_leaves_no_server_behind(data_dir: Path) -> None:
    port = free_port()
    # Empty URLs override any the test run has: this `spane dev` starts its own servers, with data in data_dir.
    env = {"SPANE_REDIS_URL": "", "SPANE_DATABASE_URL": "", "SPANE_DATA_DIR": str(data_dir), "SPANE_PORT": str(port)}
    log = data_dir / "spane.log"
    url = f"http://127.0.0.1:{port}"
    workflow = unique("kept")
    definition = {"id": workflow, "nodes": [{"id": "a", "type": "transform", "config": {"set": {"ok": True}}}]}

    proc = start_spane(["dev"], env, log, ready_url=f"{url}/ready")
    try:
        with httpx.Client(base_url=url, timeout=30.0) as api:
            post_workflow(api, definition)
            execution = execute(api, workflow)
            assert wait_final(api, execution)["status"] == "completed"
        servers = _embedded_servers(data_dir)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        stop_process(proc)
    wait_gone(servers)

    again = start_spane(["dev"], env, log, ready_url=f"{url}/ready")
    try:
        with httpx.Client(base_url=url, timeout=30.0) as api:
            assert api.get(f"/api/executions/{execution}").json()["status"] == "completed"
            assert api.get(f"/api/workflows/{workflow}").status_code == 200
        servers = _embedded_servers(data_dir)
    finally:
        stop_process(again)
    wait_gone(servers)  # a normal stop ends them too
