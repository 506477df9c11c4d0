"""The projector: consumer group ``projector`` on every events stream, folding batches into Postgres.

It reads through the core's ``ConsumerGroup``, not FastStream: FastStream's subscriber handles one message at a
time (~4k msgs/s measured) and its reclaim mode never reads new messages, while this loop takes up to 1000 entries
per XREADGROUP, writes them in one transaction and acks them with one XACK.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import redis.asyncio as aioredis
from spane_core import keys
from spane_core.codec import decode_envelopes, decode_workflow_event
from spane_core.errors import StorageError
from spane_core.events import Envelope
from spane_core.observe.metrics import Metrics
from spane_core.readmodel import migrate, writes
from spane_core.store.streams import ConsumerGroup
from spane_core.waiting import wait_event
from spane_core.workflow_events import WorkflowEvent

from spane_projector.observer import Observer
from spane_projector.payload_refs import RecordedReferences, payload_references
from spane_projector.poison import ENTRY_ERRORS, park, poison_stream
from spane_projector.prune import HistoryPruner
from spane_projector.rows import stream_pos
from spane_projector.trim import trim_consumed
from spane_projector.writer import FoldCache, write_commits, write_workflow_events

log = logging.getLogger("spane.projector")
TRIM_EVERY_S = 1.0  # how often the commit streams are trimmed behind the projector (trim.py)
FINAL_FOR_GOOD = frozenset({"execution.completed", "execution.cancelled"})  # no command moves these on
POISON_TRIES = 3  # an entry failing this often for a reason of its own is parked (``poison``)
T = TypeVar("T")
Entry = tuple[str, bytes | None]  # stream entry id, field ``b`` (None: the entry was deleted)


class _Stopped(Exception):
    pass


class _Poisoned(Exception):
    """What is being applied failed ``POISON_TRIES`` times for a reason of its own (``poison.ENTRY_ERRORS``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class ProjectorStats:
    """Progress for metrics and readiness."""

    entries: int = 0  # stream entries applied and acked
    events: int = 0  # events folded into rows (a replay folds none)
    last_event_at: int | None = None  # epoch ms of the newest event applied
    failing: int = 0  # streams whose current batch keeps failing (Postgres down, say)


class Projector:
    """Folds the execution log and the workflow registry stream into the read models.

    ``redis`` must not decode responses. ``database`` is an asyncpg pool (any jsonb codec) or a DSN, from which
    ``run`` makes a pool of its own. Entries are acked only after their transaction commits; a failing batch is
    retried with backoff, forever, and nothing after it on the same stream is read meanwhile.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        database: asyncpg.Pool | str,
        *,
        consumer: str,
        partitions: int = 1,
        batch_size: int = 1000,
        block_ms: int = 200,
        claim_idle_ms: int = 30_000,
        claim_every_s: float = 10.0,
        max_backoff_s: float = 5.0,
        batch_timeout_s: float = 60.0,
        run_migrations: bool = True,
        linger_ms: int = 25,
        retention_s: int = 0,
        resume_window_s: int = 0,
        history_retention_s: int = 0,
        observer: Observer | None = None,
    ) -> None:
        self.redis = redis
        self.database = database
        self.consumer = consumer
        self.streams = [p.events for p in keys.all_partitions(partitions)] + [keys.WorkflowKeys.events]
        self.consumer_group = ConsumerGroup(redis, keys.PROJECTOR_GROUP, consumer, self.streams)
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.max_backoff_s = max_backoff_s
        self.batch_timeout_s = batch_timeout_s
        self.run_migrations = run_migrations
        self.linger_ms = linger_ms
        self.retention_s = retention_s
        self.resume_window_ms = resume_window_s * 1000
        self.history_retention_s = history_retention_s
        self._trim_marks = {p.events: p.events_trimmed for p in keys.all_partitions(partitions)}
        self.partitions = partitions
        self.stats = ProjectorStats()
        self._pool: asyncpg.Pool | None = database if isinstance(database, asyncpg.Pool) else None
        self._trimmed_at: dict[str, float] = {}
        self._folds = FoldCache()
        self._references = RecordedReferences()
        self.observer = observer if observer is not None else Observer(Metrics())

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every stream until ``stop`` is set."""
        own_pool = self._pool is None
        try:
            if self._pool is None:
                dsn = str(self.database)
                self._pool = await self._retry(
                    "connect to Postgres", stop, lambda: asyncpg.create_pool(dsn, min_size=1)
                )
            if self.run_migrations:
                await self._retry("migrate the read models", stop, self._migrate)
            async with asyncio.TaskGroup() as tasks:
                for stream in self.streams:
                    tasks.create_task(self._consume(stream, stop), name=f"projector {stream}")
                if self.history_retention_s:
                    pruner = HistoryPruner(
                        self._pool, self.redis, self.partitions, self.history_retention_s,
                        metrics=self.observer.metrics,
                    )  # fmt: skip
                    tasks.create_task(pruner.run(stop), name="projector history pruner")
        except _Stopped:
            pass
        finally:
            if own_pool and self._pool is not None:
                await self._pool.close()
                self._pool = None

    async def backlog(self) -> int:
        """Entries not yet acked by the group (delivered or not) over all streams, for metrics."""
        return await self.consumer_group.backlog()

    async def _migrate(self) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("read models migrated to version %d", applied[-1])

    async def _consume(self, stream: str, stop: asyncio.Event) -> None:
        try:
            await self._retry(f"create group on {stream}", stop, lambda: self.consumer_group.ensure_groups([stream]))
            cursor = "0"  # first our own pending entries (a restart under the same name), then new ones
            next_claim = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_claim:
                    await self._claim(stream, stop)
                    next_claim = time.monotonic() + self.claim_every_s
                entries = await self._retry(f"read {stream}", stop, functools.partial(self._read, stream, cursor))
                if entries and cursor == ">" and len(entries) < self.batch_size and self.linger_ms > 0:
                    # Let a little more arrive: one transaction of many commits costs far less than many small
                    # ones, and a few tens of ms of read-model lag buy it.
                    await asyncio.sleep(self.linger_ms / 1000)
                    more = functools.partial(self._read, stream, cursor, 0, self.batch_size - len(entries))
                    entries += await self._retry(f"read {stream}", stop, more)
                if entries:
                    await self._handle(stream, entries, stop)
                elif cursor == "0":
                    cursor = ">"
        except _Stopped:
            return

    async def _read(self, stream: str, cursor: str, block: int | None = -1, count: int | None = None) -> list[Entry]:
        """Read entries; ``block`` -1 waits ``block_ms`` for new ones (none for the pending list), None or 0 not."""
        if block == -1:
            block = self.block_ms if cursor == ">" else None
        entries = await self.consumer_group.read(stream, count or self.batch_size, block, cursor)
        return [(entry_id, fields.get(b"b")) for entry_id, fields in entries]

    async def _claim(self, stream: str, stop: asyncio.Event) -> None:
        """Take over entries that a dead projector left unacked for ``claim_idle_ms``, and forget the consumers
        of projectors gone for good."""
        try:
            await self.consumer_group.forget_gone(stream)
        except (aioredis.RedisError, StorageError) as e:  # housekeeping: the next period tries again
            log.warning("could not look for gone consumers on %s: %s", stream, e)
        start = "0-0"
        while True:
            claim = functools.partial(self.consumer_group.reclaim, stream, self.claim_idle_ms, self.batch_size, start)
            start, claimed = await self._retry(f"claim on {stream}", stop, claim)
            entries = [(entry_id, fields.get(b"b")) for entry_id, fields in claimed]
            if entries:
                log.info("claimed %d idle entries of %s", len(entries), stream)
                await self._handle(stream, entries, stop)
            if start == "0-0":
                return

    async def _handle(self, stream: str, entries: list[Entry], stop: asyncio.Event) -> None:
        try:
            await self._retry(f"apply a batch of {stream}", stop, lambda: self._apply(stream, entries), POISON_TRIES)
        except _Poisoned:  # some entry of the batch cannot be applied: apply them one by one, parking the bad ones
            for entry in entries:
                await self._apply_or_park(stream, entry, stop)
        ids = [entry_id for entry_id, _ in entries]
        await self._retry(f"ack on {stream}", stop, lambda: self.consumer_group.ack(stream, ids))
        self.stats.entries += len(entries)
        now = time.monotonic()
        if stream != keys.WorkflowKeys.events and now - self._trimmed_at.get(stream, 0.0) >= TRIM_EVERY_S:
            self._trimmed_at[stream] = now
            try:
                await trim_consumed(self.redis, stream, self._trim_marks[stream], self.resume_window_ms)
            except (aioredis.RedisError, StorageError) as e:  # the next batch tries again; nothing depends on it
                log.warning("could not trim %s: %s", stream, e)

    async def _apply_or_park(self, stream: str, entry: Entry, stop: asyncio.Event) -> None:
        entry_id, body = entry
        try:
            await self._retry(
                f"apply entry {entry_id} of {stream}", stop, lambda: self._apply(stream, [entry]), POISON_TRIES
            )
        except _Poisoned as poisoned:
            error = poisoned.error
            await self._retry(f"park entry {entry_id}", stop, lambda: park(self.redis, stream, entry_id, body, error))
            self.observer.metrics.projector_poison.inc()
            log.error("parked entry %s of %s in %s: %r", entry_id, stream, poison_stream(stream), error)

    async def _apply(self, stream: str, entries: list[Entry]) -> None:
        assert self._pool is not None
        bodies = [(entry_id, body) for entry_id, body in entries if body is not None]
        async with asyncio.timeout(self.batch_timeout_s), self._pool.acquire() as conn:
            if stream == keys.WorkflowKeys.events:
                events: list[tuple[int, WorkflowEvent]] = [(stream_pos(i), decode_workflow_event(b)) for i, b in bodies]
                folded = await write_workflow_events(conn, events)
                newest = max((e.at for _, e in events), default=None)
            else:
                commits = [(b, decode_envelopes(b)) for _, b in bodies]
                envelopes: list[Envelope] = [e for _, decoded in commits for e in decoded]
                with self.observer.metrics.projector_batch_duration.time():
                    folded = await write_commits(conn, envelopes, self._folds, self.observer.folded)
                if refs := self._references.new(payload_references(commits)):
                    await conn.execute(writes.INSERT_PAYLOAD_REFS, [p for p, _ in refs], [e for _, e in refs])
                    self._references.recorded(refs)
                newest = max((e.at for e in envelopes), default=None)
                await self._expire_finished(envelopes)
        await self.observer.flush()
        self.stats.events += folded
        if newest is not None and (self.stats.last_event_at is None or newest > self.stats.last_event_at):
            self.stats.last_event_at = newest

    async def _expire_finished(self, envelopes: list[Envelope]) -> None:
        """Let Redis drop the log and snapshot of executions that completed or were cancelled in this batch, after
        ``retention_s``: they are archived now (the batch committed), and nothing moves them on any more. Failed
        executions stay: a dead letter may be retried. A replayed batch only sets the same expiry again."""
        if not self.retention_s:
            return
        finished = {e.execution_id for e in envelopes if e.type in FINAL_FOR_GOOD}
        if not finished:
            return
        pipe = self.redis.pipeline(transaction=False)
        for execution_id in finished:
            execution_keys = keys.for_execution(execution_id, self.partitions)
            pipe.expire(execution_keys.snapshot(execution_id), self.retention_s)
            pipe.expire(execution_keys.log(execution_id), self.retention_s)
        await pipe.execute()

    async def _retry(
        self, what: str, stop: asyncio.Event, attempt: Callable[[], Awaitable[T]], poison_after: int | None = None
    ) -> T:
        """``attempt()`` until it succeeds; raises ``_Stopped`` when ``stop`` is set first.

        Any error (Postgres or Redis down, a deadlock) is logged once per outage, and nothing is acked meanwhile:
        the entries stay pending and are applied once it works again. With ``poison_after``, an error that the
        entries themselves cause (``poison.ENTRY_ERRORS``) raises ``_Poisoned`` after that many tries instead.
        """
        delay, failures, entry_failures = 0.05, 0, 0
        try:
            while not stop.is_set():
                try:
                    result = await attempt()
                except Exception as e:
                    if poison_after is not None and isinstance(e, ENTRY_ERRORS):
                        entry_failures += 1
                        if entry_failures >= poison_after:
                            raise _Poisoned(e) from e
                    if failures == 0:
                        self.stats.failing += 1
                        log.error("projector could not %s, retrying until it can: %r", what, e, exc_info=True)
                    failures += 1
                else:
                    if failures:
                        log.warning("projector could %s again after %d failed attempts", what, failures)
                    return result
                await wait_event(stop, delay)
                delay = min(delay * 2, self.max_backoff_s)
            raise _Stopped
        finally:
            if failures:
                self.stats.failing -= 1
