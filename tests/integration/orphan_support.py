"""An owner of embedded servers to kill in tests (``python -m tests.integration.orphan_support MODE DATA_DIR``),
and the check that a server is gone.

MODE ``dev`` starts them as `spane dev` does (``start_embedded``, main thread, persistent data); MODE ``thread``
as the test fixtures may (``RedisServer``/``PostgresServer`` for tests, from a thread that has ended since). The
owner prints one JSON line (pids and ports) once both answer, then waits to be killed.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from spane_core.settings import Settings

from spane.embedded import PostgresServer, RedisServer
from spane.runtime import start_embedded


def _pid(pidfile: Path) -> int:
    return int(pidfile.read_text().split("\n", 1)[0])


def _start_as_dev(data: Path) -> dict[str, Any]:
    settings = Settings(data_dir=str(data), redis_url=None, database_url=None)
    start_embedded(settings)  # never stopped: the owner is killed
    assert settings.redis_url is not None and settings.database_url is not None
    return {
        "redis_url": settings.redis_url,
        "database_url": settings.database_url,
        "redis_pid": _pid(data / "redis" / "redis.pid"),
        "postgres_pid": _pid(data / "postgres" / "postmaster.pid"),
    }


def _start_in_a_thread(data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def start() -> None:
        redis = RedisServer(data / "redis", persistent=False).start()
        postgres = PostgresServer(data / "postgres", fast=True).start()
        out.update(redis_url=redis.url, database_url=postgres.url, redis_pid=redis.pid, postgres_pid=postgres.pid)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert out, "the servers did not start"
    return out


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def server_gone(pid: int, port: int) -> bool:
    """No live process ``pid`` (gone, or a zombie its new parent has not reaped), and nothing answers on ``port``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        state = "gone"
    if state not in ("gone", "Z"):
        return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def wait_gone(servers: dict[str, tuple[int, int]], timeout: float = 60.0) -> None:
    """Wait until every named (pid, port) is gone; fail naming those that are not by the deadline."""
    deadline = time.monotonic() + timeout
    left = dict(servers)
    while left:
        left = {name: server for name, server in left.items() if not server_gone(*server)}
        if left and time.monotonic() > deadline:
            raise AssertionError(f"still running {timeout} s after their owner was killed: {left}")
        time.sleep(0.1)


if __name__ == "__main__":
    mode, data_dir = sys.argv[1], Path(sys.argv[2])
    started = _start_as_dev(data_dir) if mode == "dev" else _start_in_a_thread(data_dir)
    print(json.dumps(started), flush=True)
    time.sleep(3600)
