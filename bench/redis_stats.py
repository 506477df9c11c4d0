"""Redis server-side counters: commands executed (INFO commandstats), as deltas over a measured window.

Commands run by Lua scripts are counted too (an EVALSHA and every ``redis.call`` inside it), as Redis counts them.
On a Redis Cluster, ``client`` is a list of clients, one per master, and the counters are summed over them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis

Servers = redis.Redis | Sequence[redis.Redis]


def _each(client: Servers) -> Sequence[redis.Redis]:
    return [client] if isinstance(client, redis.Redis) else client


def commandstats(client: Servers) -> dict[str, int]:
    """Calls per command since the server started (or since CONFIG RESETSTAT)."""
    total: Counter[str] = Counter()
    for server in _each(client):
        info: dict[str, Any] = server.info("commandstats")
        for key, value in info.items():
            if key.startswith("cmdstat_") and isinstance(value, dict):
                total[key.removeprefix("cmdstat_")] += int(value["calls"])
    return dict(total)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return {name: n for name, n in sorted(out.items(), key=lambda kv: -kv[1]) if n > 0}


def server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "?"))


def net_bytes(client: Servers) -> tuple[int, int]:
    """Bytes Redis has read from and written to its clients since it started."""
    read = written = 0
    for server in _each(client):
        stats: dict[str, Any] = server.info("stats")
        read += int(stats.get("total_net_input_bytes", 0))
        written += int(stats.get("total_net_output_bytes", 0))
    return read, written


def used_memory(client: Servers) -> int:
    return sum(int(server.info("memory")["used_memory"]) for server in _each(client))
