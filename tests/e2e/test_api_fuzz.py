"""Schemathesis against the OpenAPI document at /schema/openapi.json, with every check, on a system of its own.

Every phase runs: examples, coverage (boundary values, missing and wrong fields, every undocumented method), fuzzing,
and stateful sequences that follow the document's links (store a workflow -> execute it -> read, pause, cancel...).
The seed is fixed so that CI is reproducible; SPANE_FUZZ_SEED and SPANE_FUZZ_EXAMPLES explore further.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spane.embedded import RedisServer, free_port

from .conftest import System, create_database, start_spane, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def fuzzed_system(postgres_server: str, servers_dir: Path) -> Iterator[System]:
    """A system the fuzzer may fill with junk, apart from the one the other e2e tests share."""
    with RedisServer(servers_dir / "fuzz-redis", persistent=False) as redis:
        database_url = create_database(postgres_server)
        port = free_port()
        log = servers_dir / "fuzz-spane.log"
        env = {"SPANE_REDIS_URL": redis.url, "SPANE_DATABASE_URL": database_url, "SPANE_PORT": str(port)}
        proc = start_spane(["dev"], env, log, ready_url=f"http://127.0.0.1:{port}/ready")
        try:
            yield System(url=f"http://127.0.0.1:{port}", redis_url=redis.url, database_url=database_url, log=log)
        finally:
            stop_process(proc)


def test_schemathesis_finds_nothing(fuzzed_system: System, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    args = [str(cli), "--config-file", str(CONFIG), "run", f"{fuzzed_system.url}/schema/openapi.json"]
    # One worker: with two threads, Hypothesis's (unlocked) cache of lambda sources may fail an internal assertion.
    args += ["--checks", "all", "--workers", "1", "--no-color", "--report", "junit"]
    args += ["--report-dir", str(tmp_path), "--max-examples", os.environ.get("SPANE_FUZZ_EXAMPLES", "20")]
    args += ["--seed", os.environ.get("SPANE_FUZZ_SEED", "13")]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    report = done.stdout[-12000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"{report}\n--- the system's log ---\n{fuzzed_system.log.read_text()[-4000:]}"
    assert "Server error" not in done.stdout, report
