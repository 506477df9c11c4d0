"""Committing results: each finished task's ``Complete``/``Fail`` and the XACK of its task, in one atomic commit.

One committer drains a queue: a batch is whatever finished while the previous commit was in flight, so results
that finish close together share one pipelined ``transact`` call, and a lone result is never delayed. A result
acknowledges its task only when it is recorded (``ack_if_recorded``): a late result of a try whose lease a
reclaim took over must leave the task to the worker that now runs it.

Large outputs travel as references (the claim check): their payloads are stored in Postgres first, in one statement
per batch. When Postgres is away, the results that needed it are not recorded and their tasks stay pending, to be
run again when reclaimed; the other results of the batch are recorded as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from spane_core.commands import Command
from spane_core.effects import Task
from spane_core.ids import ExecutionId
from spane_core.keys import PartitionKeys
from spane_core.store.executions import ExecutionStore, Outcome, Transition
from spane_core.store.payloads import PayloadStore, PayloadsUnavailable

log = logging.getLogger("spane.worker")

# While shutting down, give up committing after this many tries; the tasks stay pending and are reclaimed.
CLOSING_TRIES = 5


@dataclass(frozen=True, slots=True)
class Held:
    """A task entry that this worker has read and not yet settled (acked or let go)."""

    partition: PartitionKeys
    entry_id: str
    task: Task

    @property
    def key(self) -> tuple[int, str]:
        return (self.partition.partition, self.entry_id)


@dataclass(frozen=True, slots=True)
class Result:
    """What a try of a task asks to record: its result, preceded by its start when that was not recorded yet."""

    held: Held
    commands: tuple[Command, ...]
    payloads: dict[str, bytes] = field(default_factory=dict)  # to store before the commands may be recorded


class Committer:
    def __init__(
        self, store: ExecutionStore, settled: Callable[[Held], None], payloads: PayloadStore | None = None
    ) -> None:
        self.store = store
        self.payloads = payloads
        self.settled = settled  # called for every result once its commit is done (or has failed)
        self._queue: asyncio.Queue[Result | None] = asyncio.Queue()
        self._closing = False

    def put(self, result: Result) -> None:
        self._queue.put_nowait(result)

    def close(self) -> None:
        """Commit what is queued, then let ``run`` return."""
        self._closing = True
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
            if not batch:
                continue
            try:
                await self.commit(await self._store_payloads(batch))
            except Exception:
                log.exception("committing %d result(s) failed; their tasks will be reclaimed", len(batch))
            finally:
                for result in batch:
                    self.settled(result.held)

    async def _store_payloads(self, batch: list[Result]) -> list[Result]:
        """Store the payloads of the batch's results; returns the results that may be recorded."""
        wanted: dict[str, bytes] = {}
        for result in batch:
            wanted.update(result.payloads)
        if not wanted or self.payloads is None:
            return batch
        try:
            await self.payloads.put_many(wanted)
        except PayloadsUnavailable as e:
            kept = [r for r in batch if not r.payloads]
            log.warning("%d result(s) not recorded, their tasks will be reclaimed: %s", len(batch) - len(kept), e)
            return kept
        return batch

    async def commit(self, batch: list[Result]) -> None:
        by_execution: dict[ExecutionId, list[Result]] = defaultdict(list)
        for result in batch:
            by_execution[result.held.task.execution_id].append(result)
        transitions = []
        for eid, results in by_execution.items():
            commands: list[Command] = []
            acks: list[str | None] = []  # a task is acknowledged with its result (the last command), if recorded
            for r in results:
                commands += r.commands
                acks += [None] * (len(r.commands) - 1) + [r.held.entry_id]
            transitions.append(
                Transition(eid, commands, ack_if_recorded=acks, traceparent=results[0].held.task.traceparent)
            )
        for outcome in await self._transact_retrying(transitions):
            if outcome.error is not None:  # not recorded: the task stays pending and is run again when reclaimed
                log.warning("results for %s were not recorded: %s", outcome.execution_id, outcome.error)

    async def _transact_retrying(self, transitions: list[Transition]) -> list[Outcome]:
        delay = 0.05
        tries = 0
        while True:
            tries += 1
            try:
                return await self.store.transact(transitions)
            except (RedisConnectionError, RedisTimeoutError):
                if self._closing and tries >= CLOSING_TRIES:
                    raise
                log.warning("Redis unavailable while committing results; retrying in %.2fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
