"""A fresh SPANE for one benchmark run: its own Redis and Postgres, and each service as a separate process.

``spane api``, ``spane worker`` (x N), ``spane projector`` and ``spane scheduler`` run as ``python -m spane ...``
children configured by ``SPANE_*`` environment variables, exactly as a deployment runs them. Redis keeps its AOF
(``appendfsync everysec``, as outside tests); Postgres runs with fsync off (a throwaway cluster).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import procs
from spane.embedded import PostgresServer, RedisServer, free_port


class ServiceFailed(RuntimeError):
    """A SPANE service exited or never became ready."""


class SpaneSystem:
    def __init__(self, workdir: Path, workers: int = 2, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.workers_wanted = workers
        self.extra_env = extra_env or {}
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.port = 0
        self._services: dict[str, subprocess.Popen[bytes]] = {}

    # -- servers

    def start_servers(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.workdir / "redis", persistent=True).start()
        self.postgres = PostgresServer(self.workdir / "postgres", fast=True).start()

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return self.redis.url

    @property
    def database_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            "SPANE_REDIS_URL": self.redis_url,
            "SPANE_DATABASE_URL": self.database_url,
            "SPANE_LOG_LEVEL": "WARNING",
            "SPANE_DATA_DIR": str(self.workdir / "spane-data"),
            # The diamond-limited workload's node type, under limits set high enough not to bind: what they cost.
            "SPANE_PLUGINS": "bench.plugins",
            "SPANE_CIRCUIT_BREAKERS": '{"limited": {"failureThreshold": 5, "timeoutMs": 10000}}',
            "SPANE_RATE_LIMITS": '{"limited": {"max": 50000, "perMs": 1000}}',
            "SPANE_CONCURRENCY_LIMITS": '{"limited": 1000}',
            **self.extra_env,
        }

    # -- services

    def _spawn(self, name: str, *args: str) -> None:
        proc = procs.spawn([sys.executable, "-m", "spane", *args], self._env(), self.logs / f"{name}.log")
        self._services[name] = proc

    def start_services(self) -> None:
        """The projector first (it creates the read-model schema), then the API, the scheduler and the workers."""
        self.port = free_port()
        self._spawn("projector", "projector")
        self._spawn("api", "api", "--port", str(self.port))
        self._spawn("scheduler", "scheduler")
        self.set_workers(self.workers_wanted)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise ServiceFailed(f"the API was not ready in 90 s:\n{procs.tail(self.logs / 'api.log')}")

    def set_workers(self, count: int) -> None:
        """Run exactly ``count`` worker processes: stop the old ones (they drain) and start new ones."""
        for name in [n for n in self._services if n.startswith("worker-")]:
            procs.stop(self._services.pop(name))
        for i in range(1, count + 1):
            self._spawn(f"worker-{i}", "worker")
        self.workers_wanted = count

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._services.items()}

    def check_alive(self) -> None:
        for name, proc in self._services.items():
            if proc.poll() is not None:
                log = self.logs / f"{name}.log"
                raise ServiceFailed(f"spane {name} exited with {proc.returncode}:\n{procs.tail(log)}")

    def stop_services(self) -> None:
        # The API first (no new work), then the workers, the scheduler and, last, the projector.
        order = sorted(self._services, key=lambda n: ["api", "worker", "scheduler", "projector"].index(n.split("-")[0]))
        for name in order:
            with contextlib.suppress(Exception):
                procs.stop(self._services[name])
        self._services.clear()

    def stop(self) -> None:
        self.stop_services()
        for server in (self.postgres, self.redis):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self.postgres = self.redis = None

    def redis_memory(self) -> dict[str, float]:
        """What SPANE left in Redis: used memory, and the AOF's size (MB)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            memory, persistence = client.info("memory"), client.info("persistence")
            return {
                "used_memory_mb": round(int(memory["used_memory"]) / 2**20, 1),
                "aof_mb": round(int(persistence.get("aof_current_size", 0)) / 2**20, 1),
                "keys": int(client.dbsize()),
            }
        finally:
            client.close()

    def reset_redis(self, timeout: float = 300.0) -> None:
        """Empty Redis and rewrite its AOF, so that the next phase starts as the first one did."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushall()
            with contextlib.suppress(redis.ResponseError):  # "already in progress" is fine: it is waited for
                client.bgrewriteaof()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                p = client.info("persistence")
                if not int(p.get("aof_rewrite_in_progress", 0)) and not int(p.get("aof_rewrite_scheduled", 0)):
                    return
                time.sleep(0.1)
        finally:
            client.close()

    async def versions(self) -> dict[str, str]:
        import asyncpg
        import redis.asyncio as aioredis

        out: dict[str, str] = {}
        with contextlib.suppress(Exception):
            client = aioredis.Redis.from_url(self.redis_url)
            out["redis"] = str((await client.info("server")).get("redis_version"))
            await client.aclose()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.database_url)
            try:
                out["postgres"] = str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()
        return out
