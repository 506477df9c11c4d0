"""One consumer group on a set of Redis streams, read by one named consumer: the worker's tasks and the projector's
commit streams are both taken this way.

Groups are created at id 0, not ``$``, so that entries written before a group existed are delivered too; a group
deleted under a running consumer (``NOGROUP``) is created again and the read or claim comes back empty. Reads are
batched XREADGROUPs and reclaims batched XAUTOCLAIMs, both parsed into ``Entry`` tuples whatever the protocol.
FastStream is not used: its one-message-at-a-time path is an order of magnitude slower than batched reads, and its
group handling loses entries (see DESIGN.md).

Every process joins its groups under a name of its own (host and pid by default), so each restart leaves a
consumer behind. ``forget_gone`` deletes those holding no pending entry that have not read for a long while; a
live one that was merely idle is recreated by its next read. The check and the deletion are one script, so an
entry delivered in between is never dropped with the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from spane_core.store.connection import as_text
from spane_core.store.scripts import LuaScript

log = logging.getLogger("spane.streams")

# Silent this long (and holding nothing), a consumer is taken for gone. Live ones read every second or so.
IDLE_BEFORE_FORGOTTEN_MS = 3_600_000
TOUCH_CHUNK = 1000  # ids per XCLAIM JUSTID

Entry = tuple[str, dict[bytes, bytes]]  # stream entry id, its fields (empty: the entry was deleted)
_T = TypeVar("_T")

_forget = LuaScript("forget_consumer")


class ConsumerGroup:
    """Consumer ``consumer`` of group ``group`` on each of ``streams``. ``redis`` must not decode responses."""

    def __init__(self, redis: Redis, group: str, consumer: str, streams: Sequence[str]) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.streams = list(streams)

    async def ensure_groups(self, streams: Iterable[str] | None = None) -> None:
        """Create the group on ``streams`` (default: all), and each stream if missing; an existing group stays."""
        for stream in self.streams if streams is None else streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def read(self, stream: str, count: int, block_ms: int | None, cursor: str = ">") -> list[Entry]:
        """Up to ``count`` entries of ``stream``: new ones (cursor ``>``), waiting up to ``block_ms`` for them (None
        or 0: not at all), or this consumer's pending ones from id ``cursor``."""
        reply = await self._regrouping(
            stream,
            lambda: self.redis.xreadgroup(
                self.group, self.consumer, {stream: cursor}, count=count, block=block_ms or None
            ),
        )
        if not reply:
            return []
        batches: list[Any] = list(reply.values()) if isinstance(reply, dict) else [r[1] for r in reply]
        return [_entry(item) for batch in batches for item in (batch[0] if _nested(batch) else batch)]

    async def read_any(self, streams: Sequence[str], count: int, block_ms: int | None) -> list[tuple[str, list[Entry]]]:
        """New entries of any of ``streams`` (up to ``count`` of each), waiting up to ``block_ms`` for the first."""
        try:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms or None
            )
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("consumer group %s is gone from one of %s; creating it again", self.group, ", ".join(streams))
            await self.ensure_groups(streams)
            return []
        if not reply:
            return []
        pairs: list[Any] = list(reply.items()) if isinstance(reply, dict) else [(r[0], r[1]) for r in reply]
        return [
            (as_text(name), [_entry(item) for item in (batch[0] if _nested(batch) else batch)]) for name, batch in pairs
        ]

    async def reclaim(self, stream: str, idle_ms: int, count: int, start: str = "0-0") -> tuple[str, list[Entry]]:
        """Take over up to ``count`` entries of ``stream`` pending for ``idle_ms`` with any consumer, scanning the
        pending list from ``start``; returns where the next call goes on (``0-0``: the scan is done) and them."""
        reply = await self._regrouping(
            stream, lambda: self.redis.xautoclaim(stream, self.group, self.consumer, idle_ms, start, count)
        )
        if not reply:
            return "0-0", []
        return as_text(reply[0]), [_entry(item) for item in reply[1] if item and item[0] is not None]

    async def touch(self, stream: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries this consumer holds, so that no one reclaims them while they run."""
        for i in range(0, len(ids), TOUCH_CHUNK):
            chunk: list[Any] = list(ids[i : i + TOUCH_CHUNK])
            await self.redis.xclaim(stream, self.group, self.consumer, 0, chunk, justid=True)

    async def deliveries(self, stream: str, ids: Sequence[str]) -> list[int]:
        """How many times each of ``ids`` was delivered (0: not pending), in one pipelined round trip."""
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        return [int(info[0]["times_delivered"]) if info else 0 for info in await pipe.execute()]

    async def ack(self, stream: str, ids: Sequence[str]) -> None:
        if ids:
            await self.redis.xack(stream, self.group, *ids)

    async def ack_and_delete(self, stream: str, ids: Sequence[str]) -> None:
        """Acknowledge ``ids`` and delete them from ``stream``, pipelined: for entries no one will ever need."""
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()

    async def hand_back(self, stream: str) -> int:
        """Give the entries this consumer still holds on ``stream`` back to the group at once (a stopping worker):
        each is added again as a new entry that any consumer reads now, and the old one is acknowledged and deleted,
        in one transaction. No one waits for the visibility timeout. Returns how many were handed back."""
        total = 0
        while True:
            pending = await self.redis.xpending_range(
                stream, self.group, min="-", max="+", count=TOUCH_CHUNK, consumername=self.consumer
            )
            ids = [as_text(item["message_id"]) for item in pending]
            if not ids:
                return total
            claimed = await self.redis.xclaim(stream, self.group, self.consumer, 0, list(ids))  # with their fields
            pipe = self.redis.pipeline(transaction=True)
            for _id, fields in (_entry(item) for item in claimed if item and item[1] is not None):
                pipe.xadd(stream, dict(fields.items()))
                total += 1
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()

    async def backlog(self) -> int:
        """Entries not yet acknowledged by the group (delivered or not) over all its streams."""
        total = 0
        for stream in self.streams:
            try:
                groups = await self.redis.xinfo_groups(stream)
            except ResponseError:  # no such stream yet
                continue
            for group in groups:
                if as_text(group["name"]) == self.group:
                    total += int(group.get("pending") or 0) + int(group.get("lag") or 0)
        return total

    async def forget_gone(self, stream: str, idle_ms: int = IDLE_BEFORE_FORGOTTEN_MS) -> list[str]:
        """Delete the consumers of processes gone for good from the group on ``stream``; returns their names."""
        gone = await forget_gone_consumers(self.redis, stream, self.group, keep=self.consumer, idle_ms=idle_ms)
        if gone:
            log.info("forgot %d consumer(s) gone from %s: %s", len(gone), stream, ", ".join(gone))
        return gone

    async def _regrouping(self, stream: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
        """``call()``; None when the stream or the group was deleted under us, after creating them again."""
        try:
            return await call()
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
        log.warning("consumer group %s on %s is gone; creating it again", self.group, stream)
        await self.ensure_groups([stream])
        return None


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
        name = as_text(consumer["name"])
        if name == keep or int(consumer["pending"]) > 0 or int(consumer["idle"]) < idle_ms:
            continue
        if int(await _forget(redis, [stream], [group, name])) == 1:
            gone.append(name)
    return gone


def _nested(batch: Any) -> bool:
    # RESP3 wraps each stream's entries in one more list.
    return bool(batch) and isinstance(batch[0], list)


def _entry(item: Any) -> Entry:
    return as_text(item[0]), item[1] or {}
