"""The fault suite's system: a Redis on AOF (appendfsync always), a Postgres, and every SPANE service as a process
of its own (api, two workers, projector, scheduler), each of which may be killed, stopped and started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from spane.embedded import PostgresServer, free_port
from spane.tether import spawn_tied

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "worker-1", "worker-2", "projector", "scheduler")


def _wait(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.05)


class AofRedis:
    """A redis-server that fsyncs its AOF on every write, so that a kill -9 loses no acknowledged write."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir)]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"]
        args += ["--logfile", str(self.data_dir / "redis.log")]
        # Tied to this test process: a killed test run takes its Redis along (see spane.tether).
        self.proc = spawn_tied(
            args, signal.SIGTERM, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        _wait(self._pong, "redis-server did not answer PING")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")  # not -LOADING: the AOF is replayed
        except OSError:
            return False

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    terms: int = 0


@dataclass
class FaultSystem:
    workdir: Path
    postgres: PostgresServer
    database_url: str
    visibility_ms: int = 2000
    redis: AofRedis = field(init=False)
    port: int = field(init=False)
    services: dict[str, Service] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.redis = AofRedis(self.workdir / "redis")
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "SPANE_REDIS_URL": self.redis.url,
            "SPANE_DATABASE_URL": self.database_url,
            "SPANE_TASK_VISIBILITY_TIMEOUT_MS": str(self.visibility_ms),
            "SPANE_PLUGINS": "tests.faults.plugins",
            "SPANE_CONSUMER_NAME": name,  # stable across restarts, as a Kubernetes replica's
            "SPANE_PORT": str(self.port),
        }

    def start(self) -> None:
        self.redis.start()
        for name in SERVICES:
            command = "worker" if name.startswith("worker") else name
            log = self.workdir / f"{name}.log"
            self.services[name] = Service(name, [sys.executable, "-m", "spane", command], self._env(name), log)
            self.launch(name)

    def launch(self, name: str, **env: str) -> None:
        service = self.services[name]
        service.env.update(env)
        with service.log.open("ab") as out:
            service.proc = subprocess.Popen(service.args, cwd=ROOT, env=service.env, stdout=out, stderr=out)
        if name == "api":
            _wait(self._api_answers, "the api did not answer", 60)

    def _api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self, name: str) -> None:
        service = self.services[name]
        assert service.proc is not None and service.proc.poll() is None, f"{name} is not running"
        service.proc.kill()
        service.proc.wait()
        service.kills += 1

    def terminate(self, name: str, timeout: float = 60.0) -> int:
        """SIGTERM ``name`` and wait for it to exit; its exit code."""
        service = self.services[name]
        assert service.proc is not None and service.proc.poll() is None, f"{name} is not running"
        service.proc.send_signal(signal.SIGTERM)
        code = service.proc.wait(timeout)
        service.terms += 1
        return code

    def alive(self) -> dict[str, bool]:
        return {n: s.proc is not None and s.proc.poll() is None for n, s in self.services.items()}

    def stop(self) -> None:
        for service in self.services.values():
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in self.services.values():
            if service.proc is not None:
                try:
                    service.proc.wait(30)
                except subprocess.TimeoutExpired:
                    service.proc.kill()
                    service.proc.wait()
        self.redis.stop()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {s.name} ---\n{s.log.read_text(errors='replace')[-tail:]}" for s in self.services.values()
        )
