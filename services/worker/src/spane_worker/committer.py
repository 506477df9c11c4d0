"""Committing what tries of tasks ask to record, in batches: their results, and the starts of slow nodes.

One committer drains a queue: a batch is whatever arrived while the previous commit was in flight, merged into one
transition per execution and committed in one pipelined ``transact`` call, so a lone item is never delayed and a
burst costs one round trip. A result and the acknowledgement of its task are one atomic commit, and the task is
acknowledged only when the result is recorded (``ack_if_recorded``): a late result of a try whose lease a reclaim
took over must leave the task to the worker that now runs it. An announcement (the start of a node that is still
running) waits for its outcome, which says whether the try still holds its node.

Large outputs travel as references (the claim check): their payloads are stored in Postgres first, in one statement
per batch. While Postgres is away, the results that need it wait here and are tried again after a backoff: the
node ran once, and it must not run again because its output could not be stored for a moment. Redis being away
is waited out the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from spane_core.commands import Command, MarkStarted
from spane_core.effects import Task
from spane_core.errors import PayloadsUnavailable
from spane_core.ids import ExecutionId
from spane_core.keys import PartitionKeys
from spane_core.store.executions import ExecutionStore, Outcome, Transition
from spane_core.store.payloads import PayloadStore
from spane_core.store.transient import TRANSIENT, Backoff

log = logging.getLogger("spane.worker")

# While shutting down, give up after this many tries; the tasks stay pending and are reclaimed.
CLOSING_TRIES = 5


@dataclass(frozen=True, slots=True)
class Held:
    """A task entry that this worker has read and not yet settled (acked or let go)."""

    partition: PartitionKeys  # at the task's priority: the stream it was read from
    entry_id: str
    task: Task

    @property
    def key(self) -> tuple[int, int, str]:
        return held_key(self.partition, self.entry_id)


def held_key(p: PartitionKeys, entry_id: str) -> tuple[int, int, str]:
    """Entry ids are unique within one stream only: a task is known by its partition, priority and id."""
    return (p.partition, p.priority, entry_id)


@dataclass(slots=True)
class Result:
    """What a try of a task asks to record: its result, preceded by its start when that was not recorded yet."""

    held: Held
    commands: tuple[Command, ...]
    payloads: dict[str, bytes] = field(default_factory=dict)  # to store before the commands may be recorded
    backoff: Backoff = field(default_factory=Backoff)  # between tries to store the payloads


@dataclass(frozen=True, slots=True)
class Announcement:
    """The start of a node still running: recorded so that it shows as running; its outcome goes to ``done``."""

    held: Held
    start: MarkStarted
    done: asyncio.Future[Outcome]


Item = Result | Announcement


class Committer:
    def __init__(
        self, store: ExecutionStore, settled: Callable[[Held], None], payloads: PayloadStore | None = None
    ) -> None:
        self.store = store
        self.payloads = payloads
        self.settled = settled  # called for every result once its commit is done (or has failed for good)
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._closing = False
        # Results whose payloads are tried again later, with the timer that queues them again.
        self._waiting: dict[int, tuple[asyncio.TimerHandle, Result]] = {}

    def put(self, result: Result) -> None:
        self._queue.put_nowait(result)

    async def announce(self, held: Held, start: MarkStarted) -> Outcome:
        """Record ``start`` with the next batch; returns the outcome for its execution."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Announcement(held, start, done))
        return await done

    def close(self) -> None:
        """Commit what is queued, then let ``run`` return."""
        self._closing = True
        for handle, result in self._waiting.values():  # one more try each, now
            handle.cancel()
            self._queue.put_nowait(result)
        self._waiting.clear()
        self._queue.put_nowait(None)

    async def run(self) -> None:
        done = False
        while not done:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            done = first is None
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[Item]) -> None:
        ready = await self._with_payloads_stored(batch)
        try:
            await self.commit(ready)
        except Exception as e:
            log.exception("committing %d item(s) failed; their tasks will be reclaimed", len(ready))
            for item in ready:
                if isinstance(item, Announcement) and not item.done.done():
                    item.done.set_exception(e)
        finally:
            for item in ready:
                if isinstance(item, Result):
                    self.settled(item.held)

    async def _with_payloads_stored(self, batch: list[Item]) -> list[Item]:
        """Store the payloads of the batch's results; returns the items that may be recorded now. The results whose
        payloads could not be stored are queued again after their backoff (while closing, given up: left pending)."""
        wanted: dict[str, bytes] = {}
        for item in batch:
            if isinstance(item, Result):
                wanted.update(item.payloads)
        if not wanted or self.payloads is None:
            return batch
        try:
            await self.payloads.put_many(wanted)
        except PayloadsUnavailable as e:
            later = [item for item in batch if isinstance(item, Result) and item.payloads]
            for result in later:
                self._later(result, e)
            return [item for item in batch if not (isinstance(item, Result) and item.payloads)]
        return batch

    def _later(self, result: Result, error: PayloadsUnavailable) -> None:
        if self._closing:  # the task stays pending, for whichever worker reclaims it
            log.warning("giving up on a result of %s while closing: %s", result.held.task.execution_id, error)
            self.settled(result.held)
            return
        delay = result.backoff.next_delay()
        if result.backoff.tries == 1:
            log.warning("result of %s waits for the payload store: %s", result.held.task.execution_id, error)

        def again() -> None:
            self._waiting.pop(id(result), None)
            self._queue.put_nowait(result)

        self._waiting[id(result)] = (asyncio.get_running_loop().call_later(delay, again), result)

    async def commit(self, batch: list[Item]) -> None:
        by_execution: dict[ExecutionId, list[Item]] = defaultdict(list)
        for item in batch:
            by_execution[item.held.task.execution_id].append(item)
        transitions = []
        for eid, items in by_execution.items():
            commands: list[Command] = []
            acks: list[str | None] = []  # a task is acknowledged with its result (the last command), if recorded
            for item in items:
                if isinstance(item, Announcement):
                    commands.append(item.start)
                    acks.append(None)
                else:
                    commands += item.commands
                    acks += [None] * (len(item.commands) - 1) + [item.held.entry_id]
            transitions.append(
                Transition(eid, commands, ack_if_recorded=acks, traceparent=items[0].held.task.traceparent)
            )
        outcomes = await self._transact_retrying(transitions)
        for (eid, items), outcome in zip(by_execution.items(), outcomes, strict=True):
            if outcome.error is not None:  # not recorded: the task stays pending and is run again when reclaimed
                log.warning("results for %s were not recorded: %s", eid, outcome.error)
            for item in items:
                if isinstance(item, Announcement) and not item.done.done():
                    item.done.set_result(outcome)

    async def _transact_retrying(self, transitions: list[Transition]) -> list[Outcome]:
        backoff = Backoff()
        while True:
            try:
                return await self.store.transact(transitions)
            except TRANSIENT as e:
                if self._closing and backoff.tries >= CLOSING_TRIES:
                    raise
                await backoff.wait(log, "Redis unavailable while committing results", e)
