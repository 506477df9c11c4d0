"""A local Redis Cluster of a few masters (no replicas) for the tests and the benchmark, torn down on exit.

Each master is an embedded ``RedisServer`` started with ``--cluster-enabled yes``; the slots are split evenly and the
nodes meet each other through plain CLUSTER commands (what ``redis-cli --cluster create`` sends), so nothing but
``redis-server`` is needed. Its URL is ``redis+cluster://127.0.0.1:<first port>``.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path
from typing import Any, Self

import redis
from spane_core.errors import EmbeddedServerError

from spane.embedded import RedisServer, _Server

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
_READY_TIMEOUT = 30.0


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A free port whose bus port (+10000) is free too (an ephemeral port's bus port could be past 65535)."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _free(port) and _free(port + BUS_OFFSET):
            return port
    raise EmbeddedServerError("no free port pair for a Redis Cluster node")


class RedisClusterServer(_Server):
    """``masters`` cluster-enabled ``redis-server``s in ``data_dir``/node-<i>, joined into one cluster."""

    def __init__(self, data_dir: Path, masters: int = 3, persistent: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.masters = masters
        self.persistent = persistent
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        if not self.nodes:
            raise EmbeddedServerError("RedisClusterServer has no URL until it is started")
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> Self:
        if self.nodes:
            return self
        try:
            for i in range(self.masters):
                directory = self.data_dir / f"node-{i}"
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "nodes.conf").unlink(missing_ok=True)  # a fresh cluster, never a leftover one
                config = str(directory / "nodes.conf")
                options = (
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    config,
                    "--cluster-node-timeout",
                    "5000",
                )
                self.nodes.append(
                    RedisServer(directory, port=_cluster_port(), persistent=self.persistent, options=options).start()
                )
            self._join()
        except BaseException:
            self.stop()
            raise
        return self

    def _join(self) -> None:
        clients = [redis.Redis.from_url(node.url) for node in self.nodes]
        try:
            per = SLOTS // len(clients)
            for i, client in enumerate(clients):
                end = SLOTS if i == len(clients) - 1 else (i + 1) * per
                _command(client, "CLUSTER", "ADDSLOTS", *range(i * per, end))
            for node in self.nodes[1:]:
                _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", node.port)
            deadline = time.monotonic() + _READY_TIMEOUT
            while not all(_ready(client, len(clients)) for client in clients):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"the Redis Cluster in {self.data_dir} did not reach cluster_state:ok")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            node.stop()


def _ready(client: redis.Redis, masters: int) -> bool:
    """``cluster_state:ok``, and the node knows every master (else a MOVED could name a node not yet met)."""
    raw = _command(client, "CLUSTER", "INFO")
    info = dict(
        line.split(":", 1)
        for line in (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines()
        if ":" in line
    )
    return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) >= masters


def _command(client: redis.Redis, *args: object) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
