"""Housekeeping of consumer groups: consumers of processes that are gone would otherwise stay listed forever.

Every worker and projector process joins its groups under a name of its own (host and pid by default), so each
restart leaves a consumer behind. One that holds no pending entry and has not read for a long while is deleted;
a live one that was merely idle is recreated by its next read. The check and the deletion are one script, so an
entry delivered in between is never dropped with the consumer.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from spane_core.store.scripts import LuaScript

# Silent this long (and holding nothing), a consumer is taken for gone. Live ones read every second or so.
IDLE_BEFORE_FORGOTTEN_MS = 3_600_000

_forget = LuaScript("forget_consumer")


async def forget_gone_consumers(
    redis: Redis, stream: str, group: str, *, keep: str, idle_ms: int = IDLE_BEFORE_FORGOTTEN_MS
) -> list[str]:
    """Delete ``group``'s consumers on ``stream`` idle for ``idle_ms`` with nothing pending (never ``keep``,
    the caller's own); returns their names."""
    try:
        consumers = await redis.xinfo_consumers(stream, group)
    except ResponseError:  # no such stream or group (yet)
        return []
    gone = []
    for consumer in consumers:
        name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else str(consumer["name"])
        if name == keep or int(consumer["pending"]) > 0 or int(consumer["idle"]) < idle_ms:
            continue
        if int(await _forget(redis, [stream], [group, name])) == 1:
            gone.append(name)
    return gone
