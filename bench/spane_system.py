"""A fresh SPANE for one benchmark run: its own Redis and Postgres, and each service as a separate process.

``spane api``, ``spane worker`` (x N), ``spane projector`` and ``spane scheduler`` run as ``python -m spane ...``
children configured by ``SPANE_*`` environment variables, exactly as a deployment runs them. Redis keeps its AOF
(``appendfsync everysec``, as outside tests); Postgres runs with fsync off (a throwaway cluster). With ``cluster``,
Redis is a local Redis Cluster of three masters (``spane.embedded_cluster``) and SPANE runs ``partitions`` partitions.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
import redis.asyncio as aioredis
from spane_core.settings import Settings
from spane_core.store.connection import open_redis

from bench import procs
from spane.embedded import PostgresServer, RedisServer, free_port
from spane.embedded_cluster import RedisClusterServer


class ServiceFailed(RuntimeError):
    """A SPANE service exited or never became ready."""


class SpaneSystem:
    def __init__(
        self,
        workdir: Path,
        workers: int = 2,
        extra_env: dict[str, str] | None = None,
        *,
        cluster: bool = False,
        partitions: int = 1,
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.workers_wanted = workers
        self.extra_env = extra_env or {}
        self.cluster = cluster
        self.partitions = partitions
        self.redis: RedisServer | RedisClusterServer | None = None
        self.postgres: PostgresServer | None = None
        self.port = 0
        self._services: dict[str, subprocess.Popen[bytes]] = {}

    # -- servers

    def start_servers(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.cluster:
            self.redis = RedisClusterServer(self.workdir / "redis", masters=3, persistent=True).start()
        else:
            self.redis = RedisServer(self.workdir / "redis", persistent=True).start()
        self.postgres = PostgresServer(self.workdir / "postgres", fast=True).start()

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return self.redis.url

    @property
    def redis_servers(self) -> list[RedisServer]:
        """The Redis servers: the one, or the cluster's masters."""
        if isinstance(self.redis, RedisClusterServer):
            return list(self.redis.nodes)
        return [] if self.redis is None else [self.redis]

    def async_redis(self) -> aioredis.Redis:
        """A client of SPANE's Redis: on a cluster, the one SPANE's services open (it routes as theirs do)."""
        if self.cluster:
            return open_redis(Settings(redis_url=self.redis_url, partitions=self.partitions))
        return aioredis.Redis.from_url(self.redis_url)

    def admin_clients(self) -> list[redis.Redis]:
        """A plain client per Redis server, for its INFO counters."""
        return [redis.Redis.from_url(server.url) for server in self.redis_servers]

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
            "SPANE_PARTITIONS": str(self.partitions),
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
        """What SPANE left in Redis (summed over a cluster's masters): used memory, and the AOF's size (MB)."""
        used = aof = keys = 0
        for client in self.admin_clients():
            try:
                memory, persistence = client.info("memory"), client.info("persistence")
                used += int(memory["used_memory"])
                aof += int(persistence.get("aof_current_size", 0))
                keys += int(client.dbsize())
            finally:
                client.close()
        return {"used_memory_mb": round(used / 2**20, 1), "aof_mb": round(aof / 2**20, 1), "keys": keys}

    def reset_redis(self, timeout: float = 300.0) -> None:
        """Empty Redis and rewrite its AOF, so that the next phase starts as the first one did."""
        for client in self.admin_clients():
            try:
                client.flushall()
                with contextlib.suppress(redis.ResponseError):  # "already in progress" is fine: it is waited for
                    client.bgrewriteaof()
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    p = client.info("persistence")
                    if not int(p.get("aof_rewrite_in_progress", 0)) and not int(p.get("aof_rewrite_scheduled", 0)):
                        break
                    time.sleep(0.1)
            finally:
                client.close()

    async def versions(self) -> dict[str, str]:
        import asyncpg

        out: dict[str, str] = {}
        with contextlib.suppress(Exception):
            client = self.admin_clients()[0]
            out["redis"] = str(client.info("server").get("redis_version"))
            client.close()
        if self.cluster:
            out["redis"] += f" (cluster of {len(self.redis_servers)} masters, {self.partitions} partitions)"
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.database_url)
            try:
                out["postgres"] = str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()
        return out
