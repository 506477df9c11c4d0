"""The worker loop: take node tasks from the ``workers`` consumer group, run them, commit their results.

This uses redis-py's asyncio client directly rather than FastStream: FastStream's one-message-at-a-time path moves
~4k msgs/s against ~60-80k/s for batched XREADGROUP, and its group handling has pitfalls (see DESIGN.md: groups
created at ``$`` lose earlier tasks, a raising handler leaves its message pending forever, ``min_idle_time`` turns
a subscriber into a claim-only loop). The consumer group is created here explicitly, at id 0.

Per partition, a reader XREADGROUPs a batch, marks every task started in one pipelined ``transact`` (the new
``lease`` fences results of a dead worker's earlier try), and runs the executors concurrently. Results are
committed in batches by one committer: each batch is whatever finished while the previous commit was in flight,
so a lone result is never delayed. A result and the XACK of its task are one atomic commit. Tasks idle longer than
the visibility timeout (their worker died) are reclaimed with XAUTOCLAIM; tasks still running here are kept
fresh with XCLAIM JUSTID so that no other worker steals them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from spane_core import codec
from spane_core.commands import Command, MarkStarted
from spane_core.definition import NodeDef, Workflow
from spane_core.effects import Task
from spane_core.errors import ConcurrencyError
from spane_core.ids import ExecutionId, new_lease
from spane_core.keys import WORKER_GROUP, PartitionKeys, all_partitions
from spane_core.sdk import ExecutorRegistry
from spane_core.settings import Settings
from spane_core.store.executions import ExecutionStore, Transition, WorkflowSource, now_ms
from spane_core.store.payloads import PayloadStore, PayloadsUnavailable
from spane_core.store.streams import forget_gone_consumers
from spane_core.store.transient import TRANSIENT, Backoff

from spane_worker.committer import Committer, Held, Result
from spane_worker.execute import Ran, execute
from spane_worker.lost import settle_lost
from spane_worker.task_state import keep_pending, lease_if_started, may_start

log = logging.getLogger("spane.worker")
_A = TypeVar("_A")
_R = TypeVar("_R")
FORGET_EVERY_S = 60.0  # how often the group's consumers of workers gone for good are deleted


class Worker:
    def __init__(
        self,
        redis: Redis,
        store: ExecutionStore,
        workflows: WorkflowSource,
        executors: ExecutorRegistry,
        settings: Settings,
        *,
        block_ms: int = 1000,
        shutdown_grace_s: float = 30.0,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.redis = redis
        self.payloads = payloads  # large values (the claim check); None: outputs stay inline
        self.store = store
        self.workflows = workflows
        self.executors = executors
        self.consumer = settings.consumer_name
        self.partitions = all_partitions(settings.partitions)
        self.batch = settings.worker_batch
        self.concurrency = settings.worker_concurrency
        self.visibility_ms = settings.task_visibility_timeout_ms
        self.max_deliveries = settings.task_max_deliveries
        self.block_ms = block_ms
        self.shutdown_grace_s = shutdown_grace_s
        self.announce_after_s = settings.worker_announce_after_ms / 1000
        self._held: dict[tuple[int, str], Held] = {}  # by (partition, stream entry id)
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._room = asyncio.Event()
        self._committer = Committer(store, self._release, payloads)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish the tasks in flight (up to the shutdown grace) and commit them."""
        await self.ensure_groups()
        committer = asyncio.create_task(self._committer.run(), name="spane-worker-commit")
        heartbeat = asyncio.create_task(
            self._every(self.visibility_ms / 3000, self._heartbeat, None), name="spane-worker-heartbeat"
        )
        loops = [asyncio.create_task(self._read_loop(p, stop), name=f"spane-worker-read-{p.partition}")
                 for p in self.partitions]  # fmt: skip
        loops.append(asyncio.create_task(self._every(self.visibility_ms / 2000, self._reclaim, stop)))
        loops.append(asyncio.create_task(self._every(FORGET_EVERY_S, self._forget_gone, stop)))
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._drain()
            self._committer.close()
            await asyncio.gather(committer, return_exceptions=True)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def ensure_groups(self) -> None:
        for p in self.partitions:
            try:
                await self.redis.xgroup_create(p.tasks, WORKER_GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    # -- taking tasks ---------------------------------------------------------------------------------------

    async def _read_loop(self, p: PartitionKeys, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not await self._wait_for_room(stop):
                    return
                free = self.concurrency - len(self._held)
                reply: Any = await self.redis.xreadgroup(
                    WORKER_GROUP, self.consumer, {p.tasks: ">"}, count=min(self.batch, free), block=self.block_ms
                )
                entries = [entry for _stream, items in reply or [] for entry in items]
                if entries:
                    await self._accept(p, entries, reclaimed=False)
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    log.exception("worker read loop failed on %s", p.tasks)
                    await _sleep_unless(stop, 0.5)
                else:  # the stream or group was deleted under us: create it again
                    log.warning("consumer group on %s is gone; creating it again", p.tasks)
                    await self.ensure_groups()
            except Exception:
                log.exception("worker read loop failed on %s", p.tasks)
                await _sleep_unless(stop, 0.5)

    async def _wait_for_room(self, stop: asyncio.Event) -> bool:
        while len(self._held) >= self.concurrency:
            if stop.is_set():
                return False
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), timeout=0.5)
        return True

    async def _reclaim(self) -> None:
        """Take over tasks whose worker has been silent longer than the visibility timeout."""
        for p in self.partitions:
            start = "0-0"
            for _ in range(100):  # a bounded sweep; the next period goes on
                free = self.concurrency - len(self._held)
                if free <= 0:
                    return
                reply = await self.redis.xautoclaim(
                    p.tasks,
                    WORKER_GROUP,
                    self.consumer,
                    self.visibility_ms,
                    start_id=start,
                    count=min(self.batch, free),
                )
                start = _text(reply[0])
                entries = await settle_lost(self.store, self.redis, p, list(reply[1]), self.max_deliveries)
                if entries:
                    log.info("reclaimed %d task(s) from %s", len(entries), p.tasks)
                    await self._accept(p, entries, reclaimed=True)
                if start == "0-0":
                    break

    async def _forget_gone(self) -> None:
        """Delete the consumers that workers gone for good left in the group (see ``forget_gone_consumers``)."""
        for p in self.partitions:
            gone = await forget_gone_consumers(self.redis, p.tasks, WORKER_GROUP, keep=self.consumer)
            if gone:
                log.info("forgot %d consumer(s) gone from %s: %s", len(gone), p.tasks, ", ".join(gone))

    async def _heartbeat(self) -> None:
        """Reset the idle time of every task held here, so that a long-running node is not reclaimed."""
        by_partition: dict[int, list[str]] = defaultdict(list)
        for held in list(self._held.values()):
            by_partition[held.partition.partition].append(held.entry_id)
        for p in self.partitions:
            ids = by_partition.get(p.partition, [])
            for i in range(0, len(ids), 1000):
                chunk: list[Any] = ids[i : i + 1000]
                await self.redis.xclaim(p.tasks, WORKER_GROUP, self.consumer, 0, chunk, justid=True)

    async def _accept(
        self, p: PartitionKeys, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]], *, reclaimed: bool
    ) -> None:
        fresh: list[Held] = []
        unreadable: list[str] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            if (p.partition, entry_id) in self._held:
                continue  # already running here (reclaimed from ourselves)
            try:
                if not fields or b"t" not in fields:
                    raise ValueError("the entry has no task field")
                fresh.append(Held(p, entry_id, codec.decode_task(fields[b"t"])))
            except (ValueError, msgspec.DecodeError):
                log.exception("dropping unreadable task entry %s on %s", entry_id, p.tasks)
                unreadable.append(entry_id)
        if unreadable:  # acknowledged and deleted, as the commit script does with finished tasks
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(p.tasks, WORKER_GROUP, *unreadable)
            pipe.xdel(p.tasks, *unreadable)
            await pipe.execute()
        for held in fresh:
            self._held[held.key] = held
        try:
            if not reclaimed:
                fresh = await self._run_at_once(fresh)
            await self._start(fresh)
        except BaseException:
            for held in fresh:  # not started: stay pending in the stream, to be reclaimed
                self._release(held)
            raise

    async def _run_at_once(self, fresh: list[Held]) -> list[Held]:
        """Run the tasks that may start, by this process's latest view of their executions, before recording
        their start: a quick node's start and result then take one commit instead of two. Returns the others.

        The view is only a hint: the start is recorded with ``first_only``, so a node that was meanwhile paused,
        cancelled or taken over by a reclaim is not started twice, and its result is not recorded."""
        if not fresh:
            return fresh
        execution_ids = list({h.task.execution_id for h in fresh})
        seen = await self._retrying("reading snapshots", self.store.peek, execution_ids)
        views = dict(zip(execution_ids, seen, strict=True))
        rest = []
        for held in fresh:
            if may_start(views[held.task.execution_id], held.task):
                self._launch(held, None)
            else:
                rest.append(held)
        return rest

    async def _start(self, fresh: list[Held]) -> None:
        """Mark the tasks started, in one transaction per execution, and run those that did start."""
        by_execution: dict[ExecutionId, list[Held]] = defaultdict(list)
        for held in fresh:
            by_execution[held.task.execution_id].append(held)
        groups = list(by_execution.items())
        transitions = [
            Transition(eid, [MarkStarted(h.task.node_id, h.task.queued_seq) for h in group],
                       traceparent=group[0].task.traceparent)
            for eid, group in groups
        ]  # fmt: skip
        outcomes = await self._retrying("recording starts", self.store.transact, transitions) if transitions else []
        stale: list[Transition] = []
        for (eid, group), outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome.error, ConcurrencyError):
                log.warning("could not mark tasks of %s started (%s); they will be reclaimed", eid, outcome.error)
                for held in group:
                    self._release(held)
                continue
            if outcome.error is not None:
                log.error("tasks of %s cannot run: %s", eid, outcome.error)
            acks: list[str] = []
            for held in group:
                lease = lease_if_started(outcome, held.task)
                if lease is not None:
                    self._launch(held, lease)
                else:
                    if not keep_pending(outcome.state, held.task):
                        acks.append(held.entry_id)
                    self._release(held)
            if acks:
                stale.append(Transition(eid, [], ack=acks))
        if stale:
            try:
                for outcome in await self.store.transact(stale):
                    if outcome.error is not None:
                        log.warning("could not acknowledge stale tasks of %s: %s", outcome.execution_id, outcome.error)
            except Exception:  # they stay pending and are acknowledged when reclaimed
                log.exception("acknowledging %d stale task group(s) failed", len(stale))

    async def _retrying(self, what: str, call: Callable[[_A], Awaitable[_R]], arg: _A) -> _R:
        """``call(arg)``, tried again after a backoff while it fails for a transient reason (Redis or Postgres away
        for a moment): the tasks in hand stay with this worker instead of waiting for the visibility timeout."""
        backoff = Backoff()
        while True:
            try:
                return await call(arg)
            except TRANSIENT as e:
                await backoff.wait(log, what, e)

    # -- running them ---------------------------------------------------------------------------------------

    def _launch(self, held: Held, lease: str | None) -> None:
        task = asyncio.create_task(self._run(held, lease))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, held: Held, lease: str | None) -> None:
        """Run one try of ``held``'s node and hand its result to the committer.

        ``lease`` is the node's lease when its start is recorded already; None runs it at once, recording the start
        with the result when the node is quick, or announcing it (through the committer's next batch) when it is
        still running after ``announce_after``."""
        task = held.task
        start: MarkStarted | None = None
        if lease is None:
            lease = new_lease()
            start = MarkStarted(task.node_id, task.queued_seq, lease=lease, first_only=True, started_at=now_ms())
        try:
            async with self._slots:
                workflow = await self._retrying("loading a workflow", self._workflow, task)
                running = asyncio.ensure_future(self._execute(task, workflow.node(task.node_id), lease))
                try:
                    commands: tuple[Command, ...]
                    if start is None:
                        ran = await running
                        commands = (ran.command,)
                    else:
                        # Most nodes finish in their first step: look after it before arming the announce timer.
                        await asyncio.sleep(0)
                        if not running.done():
                            await asyncio.wait({running}, timeout=self.announce_after_s)
                        if running.done():
                            ran = running.result()
                            commands = (start, ran.command)
                        else:  # a slow node: record its start now, so that it shows as running while it runs
                            outcome = await self._committer.announce(held, start)
                            if lease_if_started(outcome, task) != lease:
                                # Paused, cancelled or reclaimed meanwhile: stop; the task stays pending and the
                                # worker that reclaims it settles it.
                                running.cancel()
                                self._release(held)
                                return
                            ran = await running
                            commands = (ran.command,)
                finally:
                    if not running.done():
                        running.cancel()
            self._committer.put(Result(held, commands, ran.payloads))
        except Exception:
            log.exception("task %s of %s could not run; it will be reclaimed", task.node_id, task.execution_id)
            self._release(held)
        except asyncio.CancelledError:
            self._release(held)
            raise

    async def _workflow(self, task: Task) -> Workflow:
        return await self.workflows.get(task.workflow_id, task.workflow_version)

    async def _execute(self, task: Task, node: NodeDef, lease: str) -> Ran:
        """``execute``, waiting out a payload store that is away: nothing ran when it cannot read the input."""
        backoff = Backoff()
        while True:
            try:
                return await execute(task, node, lease, self.executors, self.payloads)
            except PayloadsUnavailable as e:
                await backoff.wait(log, f"reading the input of {task.node_id} of {task.execution_id}", e)

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("waiting for %d running task(s) to finish", len(self._running))
        _done, pending = await asyncio.wait(set(self._running), timeout=self.shutdown_grace_s)
        if pending:
            log.warning(
                "cancelling %d task(s) still running after the shutdown grace; others will reclaim them", len(pending)
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _release(self, held: Held) -> None:
        self._held.pop(held.key, None)
        if len(self._held) < self.concurrency:
            self._room.set()

    async def _every(self, period_s: float, job: Callable[[], Awaitable[None]], stop: asyncio.Event | None) -> None:
        forever = asyncio.Event()
        while True:
            if await _sleep_unless(stop or forever, period_s):
                return
            try:
                await job()
            except Exception:
                log.exception("worker %s failed", getattr(job, "__name__", "job"))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep for ``seconds`` or until ``stop`` is set; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
