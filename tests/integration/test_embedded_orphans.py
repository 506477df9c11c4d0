"""The embedded Redis and Postgres never outlive the process that started them: killed with SIGKILL, its servers go
too (Linux: a parent-death signal), and `spane dev`'s data stays sound for the next run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from spane.embedded import PostgresServer, RedisServer
from tests.integration.orphan_support import port_of, wait_gone

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"),
]


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spane-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def owner(scratch: Path) -> Iterator[Any]:
    """Start an owner process in a mode; returns what it printed. Whatever happens, it is killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        env = {k: v for k, v in os.environ.items() if k not in ("SPANE_REDIS_URL", "SPANE_DATABASE_URL")}
        args = [sys.executable, "-m", "tests.integration.orphan_support", mode, str(scratch / mode)]
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the owner fails (and closes stdout) or prints once both servers answer
        assert line, f"the owner exited with {proc.wait()} before its servers answered"
        started: dict[str, Any] = json.loads(line)
        return proc, started

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _servers(started: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {
        "redis-server": (started["redis_pid"], port_of(started["redis_url"])),
        "postgres": (started["postgres_pid"], port_of(started["database_url"])),
    }


async def _pg(url: str, sql: str, *, write: bool = False) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await (conn.execute(sql) if write else conn.fetchval(sql))
    finally:
        await conn.close()


async def test_a_killed_spane_dev_owner_takes_its_servers_along_and_keeps_their_data(scratch: Path, owner: Any) -> None:
    proc, started = await asyncio.to_thread(owner, "dev")
    client = redis.Redis.from_url(started["redis_url"])
    client.set("kept", "yes")
    client.close()
    await _pg(started["database_url"], "create table kept (v text); insert into kept values ('yes')", write=True)

    _kill9(proc)
    await asyncio.to_thread(wait_gone, _servers(started))

    # The next run finds the data the killed one wrote (the servers shut down cleanly: AOF flushed, checkpoint).
    with RedisServer(scratch / "dev" / "redis") as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        client.close()
    postgres = PostgresServer(scratch / "dev" / "postgres")
    await asyncio.to_thread(postgres.start)
    try:
        assert await _pg(postgres.url, "select v from kept") == "yes"
    finally:
        await asyncio.to_thread(postgres.stop)


async def test_servers_started_from_a_thread_outlive_the_thread_but_not_the_process(owner: Any) -> None:
    proc, started = await asyncio.to_thread(owner, "thread")
    # The thread that started them has ended: they still serve (the tie is to the process, not to that thread).
    client = redis.Redis.from_url(started["redis_url"])
    assert client.ping()
    client.close()
    assert await _pg(started["database_url"], "select 1") == 1

    _kill9(proc)
    await asyncio.to_thread(wait_gone, _servers(started))


async def test_servers_go_even_when_the_data_dir_goes_with_their_owner(scratch: Path, owner: Any) -> None:
    # `kill -9` then `rm -rf .spane`: Redis cannot save on its way out, and must exit all the same.
    proc, started = await asyncio.to_thread(owner, "dev")
    _kill9(proc)
    shutil.rmtree(scratch / "dev", ignore_errors=True)  # the servers remove files of theirs meanwhile
    await asyncio.to_thread(wait_gone, _servers(started))
