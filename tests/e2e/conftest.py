"""The whole system, started once for the e2e tests as a real `spane dev` process, talked to over HTTP.

It gets a Redis of its own (the integration tests flush theirs) and a fresh database on the session's Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from spane.embedded import RedisServer, free_port
from spane.tether import spawn_tied

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class System:
    url: str
    redis_url: str
    database_url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # what every process of the system needs besides the URLs


def create_database(admin_url: str) -> str:
    """A fresh, empty database on the session's Postgres; its URL."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(create())
    finally:
        loop.close()
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def start_spane(
    args: list[str], env: dict[str, str], log: Path, ready_url: str | None = None, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start `python -m spane ARGS` and wait until ``ready_url`` answers 200."""
    full_env = {**os.environ, **env}
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        # Tied to the test run (SIGTERM when it dies, see spane.tether): a killed run leaves no `spane` behind.
        proc = spawn_tied(
            [sys.executable, "-m", "spane", *args], signal.SIGTERM, cwd=ROOT, env=full_env, stdout=handle, stderr=handle
        )
    if ready_url is None:
        return proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spane {' '.join(args)} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready_url, timeout=1.0).status_code == 200:
                return proc
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"spane {' '.join(args)} was not ready in {timeout} s:\n{log.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_system(
    postgres_server: str, servers_dir: Path, redis_url: str, name: str, env: dict[str, str] | None = None
) -> Iterator[System]:
    """`spane dev` on ``redis_url`` and a fresh database, with ``env`` besides the e2e settings."""
    database_url = create_database(postgres_server)
    port = free_port()
    log = servers_dir / f"{name}-spane.log"
    full_env = {
        "SPANE_REDIS_URL": redis_url,
        "SPANE_DATABASE_URL": database_url,
        "SPANE_PORT": str(port),
        "SPANE_TASK_VISIBILITY_TIMEOUT_MS": "3000",
        "SPANE_PLUGINS": "tests.e2e.plugins",
        **(env or {}),
    }
    proc = start_spane(["dev"], full_env, log, ready_url=f"http://127.0.0.1:{port}/ready")
    try:
        yield System(f"http://127.0.0.1:{port}", redis_url, database_url, log, env=dict(env or {}))
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def system(postgres_server: str, servers_dir: Path) -> Iterator[System]:
    with (
        RedisServer(servers_dir / "e2e-redis", persistent=False) as redis,
        running_system(postgres_server, servers_dir, redis.url, "e2e") as system,
    ):
        yield system


@pytest.fixture
def api(system: System) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, timeout=30.0) as client:
        yield client
