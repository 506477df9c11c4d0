"""Trimming the commit streams behind the projector, keeping a window for clients that resume ``/api/events``.

A commit stream is a hand-over to the projector, not the log (each execution keeps its own log, and the read models
archive it), so an entry that every consumer group has acknowledged is of no further use to SPANE itself. The
all-events SSE stream resumes from it, though: a client reconnecting with ``Last-Event-ID`` is replayed what the
stream still holds. So the trim keeps, besides everything a group has not acknowledged, the entries of the last
``window_ms`` (``SPANE_EVENTS_RESUME_WINDOW_S``), and records the newest entry it removed in the stream's trim mark
(``PartitionKeys.events_trimmed``, in the stream's slot): a resume from before that mark is told it has a gap.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from spane_core.store.connection import as_text
from spane_core.store.scripts import LuaScript

_trim = LuaScript("trim_commits")


async def trim_consumed(redis: aioredis.Redis, stream: str, mark: str, window_ms: int = 0) -> int:
    """Drop the entries of ``stream`` that every consumer group has acknowledged and that are older than
    ``window_ms``; move ``mark`` to the newest entry dropped. Returns how many were dropped."""
    floor: bytes | str | None = None
    for group in await redis.xinfo_groups(stream):
        pending = await redis.xpending(stream, group["name"])
        candidate: bytes | str = pending["min"] if pending["pending"] else group["last-delivered-id"]
        if floor is None or _stream_id(candidate) < _stream_id(floor):
            floor = candidate
    if floor is None or _stream_id(floor) == (0, 0):
        return 0
    removed: int = await _trim(redis, [stream, mark], [as_text(floor), window_ms])
    return removed


def _stream_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = as_text(value).partition("-")
    return int(ms), int(seq or 0)
