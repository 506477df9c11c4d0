"""Running the tasks a worker took: decode them, record their starts, run the executors, hand the results over.

Fresh tasks whose executions allow it run at once, before their start is recorded (the quick path): a quick node's
start and result then take one commit instead of two. The others, and every reclaimed task, are marked started
first, in one pipelined ``transact`` (the new ``lease`` fences results of a dead worker's earlier try). Both paths
run a node with the same ``_run``, and its result goes to the committer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from opentelemetry import context as otel_context
from opentelemetry.trace import set_span_in_context
from spane_core import codec
from spane_core.commands import Command, Complete, MarkStarted
from spane_core.definition import NodeDef, Workflow
from spane_core.effects import Task
from spane_core.errors import ConcurrencyError, PayloadsUnavailable
from spane_core.ids import ExecutionId, new_lease
from spane_core.keys import PartitionKeys
from spane_core.observe import logs
from spane_core.observe.context import node_traceparent
from spane_core.observe.context import parse as parse_traceparent
from spane_core.observe.metrics import Metrics
from spane_core.observe.otel import remote_span
from spane_core.sdk import ExecutorRegistry
from spane_core.store.executions import ExecutionStore, Transition, WorkflowSource, now_ms
from spane_core.store.payloads import PayloadStore
from spane_core.store.streams import ConsumerGroup, Entry
from spane_core.store.transient import TRANSIENT, Backoff

from spane_worker.committer import Committer, Held, Result, held_key
from spane_worker.cpu import CpuPool
from spane_worker.execute import Ran, execute
from spane_worker.gate import Gate
from spane_worker.held import HeldTasks
from spane_worker.task_state import keep_pending, lease_if_started, may_start

log = logging.getLogger("spane.worker")
LAUNCHED_KEPT = 32  # the names of the latest nodes launched, to tell which one blocked the loop
_A = TypeVar("_A")
_R = TypeVar("_R")
EffectHandler = Callable[[Task], Awaitable[None]]


class Runner:
    """Runs at most ``concurrency`` nodes at once; ``drain`` waits for those running when the worker stops."""

    def __init__(
        self,
        group: ConsumerGroup,
        held: HeldTasks,
        committer: Committer,
        store: ExecutionStore,
        workflows: WorkflowSource,
        executors: ExecutorRegistry,
        payloads: PayloadStore | None,
        *,
        announce_after_s: float,
        shutdown_grace_s: float,
        metrics: Metrics | None = None,
        traced: bool = False,
        cpu: CpuPool | None = None,
        gate: Gate | None = None,
        effects: EffectHandler | None = None,
    ) -> None:
        self.group = group
        self.held = held
        self.committer = committer
        self.store = store
        self.workflows = workflows
        self.executors = executors
        self.payloads = payloads  # large values (the claim check); None: outputs stay inline
        self.announce_after_s = announce_after_s
        self.shutdown_grace_s = shutdown_grace_s
        self.metrics = metrics if metrics is not None else Metrics()
        self.traced = traced  # this process traces what nodes call (the http node's requests)
        self.cpu = cpu  # the process pool of CPU-bound node types
        self.gate = gate  # shared limits; None: none apply
        self.effects = effects  # carries out tasks that are effects on other executions (``Task.kind``)
        self._slots = asyncio.Semaphore(held.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._launched: deque[str] = deque(maxlen=LAUNCHED_KEPT)  # names, for ``on_loop``

    async def accept(self, p: PartitionKeys, entries: list[Entry], *, reclaimed: bool) -> None:
        """Hold and run the tasks of ``entries``, read (or, ``reclaimed``, taken over) from partition ``p``."""
        fresh: list[Held] = []
        unreadable: list[str] = []
        for entry_id, fields in entries:
            if held_key(p, entry_id) in self.held:
                continue  # already running here (reclaimed from ourselves)
            try:
                if b"t" not in fields:
                    raise ValueError("the entry has no task field")
                fresh.append(Held(p, entry_id, codec.decode_task(fields[b"t"])))
            except (ValueError, msgspec.DecodeError):
                log.exception("dropping unreadable task entry %s on %s", entry_id, p.tasks)
                unreadable.append(entry_id)
        # Acknowledged and deleted, as the commit script does with finished tasks.
        await self.group.ack_and_delete(p.tasks, unreadable)
        if any(held.task.kind for held in fresh):
            for held in fresh:
                if held.task.kind:
                    self._track(asyncio.create_task(self._carry_out(held)))
            fresh = [held for held in fresh if not held.task.kind]
        for held in fresh:
            self.held.hold(held)
        try:
            if self.gate is not None:
                admitted = await self.gate.admit(fresh)
                if len(admitted) < len(fresh):
                    kept = {h.key for h in admitted}
                    for held in fresh:
                        if held.key not in kept:  # deferred, or left pending when that could not be recorded
                            self.held.release(held)
                fresh = admitted
            if not reclaimed:
                fresh = await self._run_at_once(fresh)
            await self._start(fresh)
        except BaseException:
            for held in fresh:  # not started: stay pending in the stream, to be reclaimed
                self.held.release(held)
            raise

    async def drain(self) -> None:
        """Wait up to the shutdown grace for the running nodes; cancel those still running (others reclaim them)."""
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

    async def _run_at_once(self, fresh: list[Held]) -> list[Held]:
        """Run the tasks that may start, by this process's latest view of their executions, before recording
        their start: a quick node's start and result then take one commit instead of two. Returns the others.

        The view is only a hint: the start is recorded with ``first_only``, so a node that was meanwhile paused,
        cancelled or taken over by a reclaim is not started twice, and its result is not recorded."""
        if not fresh:
            return fresh
        execution_ids = list({h.task.execution_id for h in fresh})
        seen = await retrying("reading snapshots", self.store.peek, execution_ids)
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
        outcomes = await retrying("recording starts", self.store.transact, transitions) if transitions else []
        stale: list[Transition] = []
        for (eid, group), outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome.error, ConcurrencyError):
                log.warning("could not mark tasks of %s started (%s); they will be reclaimed", eid, outcome.error)
                for held in group:
                    self.held.release(held)
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
                    self.held.release(held)
            if acks:
                stale.append(Transition(eid, [], ack=acks))
        if stale:
            try:
                for outcome in await self.store.transact(stale):
                    if outcome.error is not None:
                        log.warning("could not acknowledge stale tasks of %s: %s", outcome.execution_id, outcome.error)
            except Exception:  # they stay pending and are acknowledged when reclaimed
                log.exception("acknowledging %d stale task group(s) failed", len(stale))

    def on_loop(self) -> list[str]:
        """The nodes that ran on this worker's event loop since the last call (CPU-bound ones run in the pool):
        those running now and those launched meanwhile (a node that blocked the loop may be done already)."""
        names = dict.fromkeys([*self._launched, *(t.get_name() for t in self._running)])
        self._launched.clear()
        return [name for name in names if not self.executors.is_cpu_bound(name.split(" ", 1)[0])]

    def _launch(self, held: Held, lease: str | None) -> None:
        t = held.task
        name = f"{t.node_type} (node {t.node_id} of execution {t.execution_id})"
        task = asyncio.create_task(self._run(held, lease), name=name)
        self._launched.append(name)
        self._track(task)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _carry_out(self, held: Held) -> None:
        """Carry out an effect task and acknowledge it; one that fails stays pending, and is carried out again
        when reclaimed (every effect is idempotent)."""
        try:
            if self.effects is None:
                log.error("this worker cannot carry out %s tasks (it has no payload store)", held.task.kind)
            else:
                await retrying(f"carrying out {held.task.kind}", self.effects, held.task)
            await self.group.ack_and_delete(held.partition.tasks, [held.entry_id])
        except Exception:
            log.exception("%s for %s failed; it will be reclaimed", held.task.kind, held.task.execution_id)

    async def _run(self, held: Held, lease: str | None) -> None:
        """Run one try of ``held``'s node and hand its result to the committer.

        ``lease`` is the node's lease when its start is recorded already; None runs it at once, recording the start
        with the result when the node is quick, or announcing it (through the committer's next batch) when it is
        still running after ``announce_after``."""
        task = held.task
        logs.bind(task.execution_id, task.node_id, task.attempt, task.traceparent)  # this asyncio task's log lines
        start: MarkStarted | None = None
        if lease is None:
            lease = new_lease()
            start = MarkStarted(task.node_id, task.queued_seq, lease=lease, first_only=True, started_at=now_ms())
        try:
            async with self._slots:
                workflow = await retrying("loading a workflow", self._workflow, task)
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
                            outcome = await self.committer.announce(held, start)
                            if lease_if_started(outcome, task) != lease:
                                # Paused, cancelled or reclaimed meanwhile: stop; the task stays pending and the
                                # worker that reclaims it settles it.
                                running.cancel()
                                self.held.release(held)
                                return
                            ran = await running
                            commands = (ran.command,)
                finally:
                    if not running.done():
                        running.cancel()
            if self.gate is not None:
                self.gate.ran(held, ran.command)
            self.committer.put(Result(held, commands, ran.payloads))
        except Exception:
            log.exception("task %s of %s could not run; it will be reclaimed", task.node_id, task.execution_id)
            self.held.release(held)
        except asyncio.CancelledError:
            self.held.release(held)
            raise

    async def _workflow(self, task: Task) -> Workflow:
        return await self.workflows.get(task.workflow_id, task.workflow_version)

    async def _execute(self, task: Task, node: NodeDef, lease: str) -> Ran:
        """``execute``, waiting out a payload store that is away: nothing ran when it cannot read the input."""
        backoff = Backoff()
        under = node_span(task) if self.traced else None
        token = None if under is None else otel_context.attach(under)
        try:
            while True:
                began = time.perf_counter()
                try:
                    ran = await execute(task, node, lease, self.executors, self.payloads, self.cpu)
                except PayloadsUnavailable as e:
                    await backoff.wait(log, f"reading the input of {task.node_id} of {task.execution_id}", e)
                    continue
                status = "completed" if isinstance(ran.command, Complete) else "failed"
                self.metrics.node_ran(node.type, status, time.perf_counter() - began)
                return ran
        finally:
            if token is not None:
                otel_context.detach(token)


def node_span(task: Task) -> otel_context.Context | None:
    """The OpenTelemetry context of the task's node span (made from the log), for spans made while it runs."""
    traceparent = node_traceparent(task.traceparent, task.execution_id, task.node_id, task.attempt)
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    return set_span_in_context(remote_span(parsed.trace_id, parsed.span_id))


async def retrying(what: str, call: Callable[[_A], Awaitable[_R]], arg: _A) -> _R:
    """``call(arg)``, tried again after a backoff while it fails for a transient reason (Redis or Postgres away
    for a moment): the tasks in hand stay with this worker instead of waiting for the visibility timeout."""
    backoff = Backoff()
    while True:
        try:
            return await call(arg)
        except TRANSIENT as e:
            await backoff.wait(log, what, e)
