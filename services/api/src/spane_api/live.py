"""Live events: one reader per API process follows the commit streams and fans out to in-memory subscribers.

Every commit appends one entry to its partition's events stream (``spane:{p}:events``, field ``b``: the commit's
envelopes). The reader XREADs every partition's stream without a consumer group, so every API process sees every
event, and hands each envelope to the subscriptions that want it. However many clients listen, a process holds one
blocking Redis connection for them all (on a Redis Cluster one per partition), and none while no one listens.

A subscription's buffer is bounded: a client that does not keep up is marked dropped and its buffer freed, so it can
never stall the reader or the other clients; it then catches up from the log by sequence number (see
``routes/events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from spane_core.codec import decode_envelopes
from spane_core.errors import StorageUnavailable
from spane_core.events import Envelope
from spane_core.keys import all_partitions
from spane_core.store.cluster import is_cluster
from spane_core.store.connection import as_text

log = logging.getLogger("spane.api.live")

BUFFER_LIMIT = 1000  # events held for one subscriber before it is dropped
READ_COUNT = 500
BLOCK_MS = 1000
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Position:
    """Where an event sits in the commit streams: partition, stream entry id, index in the commit."""

    partition: int
    entry: tuple[int, int]
    index: int

    def __str__(self) -> str:
        return f"{self.partition}-{self.entry[0]}-{self.entry[1]}-{self.index}"

    @staticmethod
    def parse(text: str) -> Position | None:
        parts = text.strip().split("-")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return None
        p, ms, n, i = (int(x) for x in parts)
        return Position(p, (ms, n), i)


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


@dataclass(eq=False)
class Subscription:
    """What one client listens to; ``None`` filters match anything."""

    execution_id: str | None = None
    workflow_id: str | None = None
    limit: int = BUFFER_LIMIT
    dropped: bool = False
    _items: deque[tuple[Position, Envelope]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, envelope: Envelope) -> bool:
        return (self.execution_id is None or envelope.execution_id == self.execution_id) and (
            self.workflow_id is None or envelope.workflow_id == self.workflow_id
        )

    def offer(self, position: Position, envelope: Envelope) -> None:
        if self.dropped:
            return
        if len(self._items) >= self.limit:
            self.dropped = True
            self._items.clear()
        else:
            self._items.append((position, envelope))
        self._wake.set()

    def wake(self) -> None:
        """Let a ``take`` return now (with what there is)."""
        self._wake.set()

    async def take(self, timeout_s: float) -> list[tuple[Position, Envelope]]:
        """What arrived since the last call, waiting up to ``timeout_s`` for something (empty: nothing came)."""
        if not self._items and not self.dropped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
        self._wake.clear()
        items = list(self._items)
        self._items.clear()
        return items


class EventHub:
    """The process's one reader of the commit streams. ``run`` is its task; ``subscribe`` is for the routes."""

    def __init__(self, redis: Redis, partitions: int) -> None:
        self.redis = redis
        self.streams = [keys.events for keys in all_partitions(partitions)]
        self._subscriptions: set[Subscription] = set()
        # Each event goes to those following its execution and those following more (a workflow, or everything):
        # a thousand calls each waiting for its own execution cost one lookup per event, not a thousand.
        self._by_execution: dict[str, set[Subscription]] = {}
        self._broad: set[Subscription] = set()
        self._cursors: dict[str, str] | None = None  # None: not reading (no one listens)
        self._wanted = asyncio.Event()
        self._cursor_lock = asyncio.Lock()
        # Set when the server begins to stop (``stop``): calls held for an execution's end answer at once (202) and
        # event streams end (their clients resume with Last-Event-ID), rather than be cut when the server's grace
        # period ends (a 500, an error in the log).
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """The server begins to stop: every subscription's waiting ends now."""
        self.stopping.set()
        for subscription in self._subscriptions:
            subscription.wake()

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @contextlib.asynccontextmanager
    async def subscribe(self, subscription: Subscription) -> AsyncIterator[Subscription]:
        """Listen from now on: every event committed after this returns reaches ``subscription``."""
        self._subscriptions.add(subscription)
        execution_id = subscription.execution_id
        if execution_id is None:
            self._broad.add(subscription)
        else:
            self._by_execution.setdefault(execution_id, set()).add(subscription)
        try:
            await self._start_reading()
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            if execution_id is None:
                self._broad.discard(subscription)
            elif (following := self._by_execution.get(execution_id)) is not None:
                following.discard(subscription)
                if not following:
                    del self._by_execution[execution_id]

    async def _start_reading(self) -> None:
        async with self._cursor_lock:
            if self._cursors is None:
                # The streams' last ids, read after the subscription was added: nothing committed later is missed.
                pipe = self.redis.pipeline(transaction=False)
                for stream in self.streams:
                    pipe.xrevrange(stream, count=1)
                lasts = await pipe.execute()
                self._cursors = {
                    s: as_text(last[0][0]) if last else "0-0" for s, last in zip(self.streams, lasts, strict=True)
                }
                self._wanted.set()

    async def run(self) -> None:
        # One XREAD names streams of one slot only on a Redis Cluster, where each partition's stream has its own:
        # there, one follower per partition, each holding a blocking connection on its partition's node.
        groups = [[stream] for stream in self.streams] if is_cluster(self.redis) else [self.streams]
        await asyncio.gather(*(self._follow(group) for group in groups))

    async def _follow(self, streams: list[str]) -> None:
        while True:
            await self._wanted.wait()
            try:
                await self._read_once(streams)
            except StorageUnavailable as e:
                log.warning("live events: reading the commit streams failed (%s); retrying", e)
                await asyncio.sleep(RETRY_S)
            except Exception:
                # A bug must not end live events for the process: log it and read on (streams fill gaps from
                # the log, so an execution's stream loses nothing).
                log.exception("live events: reading the commit streams failed; retrying")
                await asyncio.sleep(RETRY_S)
            if not self._subscriptions:
                async with self._cursor_lock:
                    if not self._subscriptions:
                        self._cursors = None
                        self._wanted.clear()

    async def _read_once(self, streams: list[str]) -> None:
        cursors = self._cursors
        if cursors is None:
            return
        reading: dict[Any, Any] = {stream: cursors[stream] for stream in streams}
        reply = await self.redis.xread(reading, count=READ_COUNT, block=BLOCK_MS)
        if self._cursors is not cursors:
            # Everyone left and someone came back meanwhile (on a cluster another partition's follower saw it):
            # the fresh cursors start where the streams were then, and the next read from them covers this one.
            return
        for stream, entries in _stream_entries(reply):
            partition = self.streams.index(stream)
            for entry_id, fields in entries:
                cursors[stream] = entry_id
                body = fields.get(b"b")
                if body is None:
                    continue
                self.publish(partition, entry_id, decode_envelopes(body))

    def publish(self, partition: int, entry_id: str, envelopes: list[Envelope]) -> None:
        entry = parse_entry_id(entry_id)
        broad, by_execution = self._broad, self._by_execution
        for index, envelope in enumerate(envelopes):
            following = by_execution.get(envelope.execution_id)
            if not following and not broad:
                continue
            position = Position(partition, entry, index)
            for subscription in (*(following or ()), *broad):
                if subscription.wants(envelope):
                    subscription.offer(position, envelope)


def _stream_entries(reply: Any) -> list[tuple[str, list[tuple[str, dict[bytes, bytes]]]]]:
    """XREAD's answer, RESP2 (a list of pairs) or RESP3 (a map), as (stream, [(entry id, fields)])."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else ((r[0], r[1]) for r in reply)
    out = []
    for stream, batch in pairs:
        items = (
            batch[0] if batch and isinstance(batch[0], list) and batch[0] and isinstance(batch[0][0], list) else batch
        )
        out.append((as_text(stream), [(as_text(item[0]), item[1] or {}) for item in items]))
    return out
