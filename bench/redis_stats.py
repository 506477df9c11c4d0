"""Redis server-side counters: commands executed (INFO commandstats), as deltas over a measured window.

Commands run by Lua scripts are counted too (an EVALSHA and every ``redis.call`` inside it), as Redis counts them.
"""

from __future__ import annotations

from typing import Any

import redis


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (or since CONFIG RESETSTAT)."""
    info: dict[str, Any] = client.info("commandstats")
    return {
        key.removeprefix("cmdstat_"): int(value["calls"])
        for key, value in info.items()
        if key.startswith("cmdstat_") and isinstance(value, dict)
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return {name: n for name, n in sorted(out.items(), key=lambda kv: -kv[1]) if n > 0}


def server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "?"))


def net_bytes(client: redis.Redis) -> tuple[int, int]:
    """Bytes Redis has read from and written to its clients since it started."""
    stats: dict[str, Any] = client.info("stats")
    return int(stats.get("total_net_input_bytes", 0)), int(stats.get("total_net_output_bytes", 0))


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])
