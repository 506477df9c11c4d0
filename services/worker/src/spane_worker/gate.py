"""The limits gate: a task whose node has shared limits (a circuit breaker, rate limits, a concurrency limit) runs
only when all of them admit it; otherwise its node is deferred (``Defer``: ``node.waiting`` with the limit as the
reason, a durable timer, no attempt spent) and its task acknowledged in the same commit.

A node without limits costs one dictionary lookup. An admitted try holds its concurrency slot (and, through a
half-open breaker, the probe) until its task is let go; its outcome is then told to its breaker, in batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from spane_core.commands import Command, Complete, Defer, Fail
from spane_core.definition import NodeDef
from spane_core.effects import Task, timer_member
from spane_core.ids import ExecutionId, NodeId
from spane_core.node_limits import LimitRules, NodeLimits
from spane_core.store.executions import ExecutionStore, Transition, WorkflowSource
from spane_core.store.limiter import Limiter, Outcome
from spane_core.store.transient import TRANSIENT, Backoff
from spane_core.waiting import wait_event

from spane_worker.committer import Held
from spane_worker.task_state import keep_pending

log = logging.getLogger("spane.worker")
CACHE_SIZE = 10_000  # nodes whose limits are remembered (a few per workflow version)
_UNKNOWN = NodeLimits()


class Gate:
    def __init__(self, limiter: Limiter, rules: LimitRules, workflows: WorkflowSource, store: ExecutionStore) -> None:
        self.limiter = limiter
        self.rules = rules
        self.workflows = workflows
        self.store = store
        self._limits: dict[tuple[str, int, str], NodeLimits | None] = {}
        # Admitted tries by task key: their member, limits and (once known) outcome.
        self._admitted: dict[tuple[int, int, str], tuple[str, NodeLimits, Outcome]] = {}
        self._ended: list[tuple[str, NodeLimits, Outcome]] = []
        self._wakeup = asyncio.Event()

    async def admit(self, fresh: list[Held]) -> list[Held]:
        """The tasks of ``fresh`` that may run now; the others are deferred (and their tasks acknowledged) or,
        when that cannot be recorded, left pending to be reclaimed. The caller lets go of every task not returned."""
        limited: list[tuple[Held, NodeLimits]] = []
        for held in fresh:
            t = held.task
            limits = self._limits.get((t.workflow_id, t.workflow_version, t.node_id), _UNKNOWN)
            if limits is _UNKNOWN:
                limits = await self._node_limits(t)
            if limits is not None:
                limited.append((held, limits))
        if not limited:
            return fresh
        members = [_member(h.task) for h, _ in limited]
        tries = [(m, lim) for m, (_, lim) in zip(members, limited, strict=True)]
        backoff = Backoff()
        while True:
            try:
                verdicts = await self.limiter.admit(tries)
                break
            except TRANSIENT as e:
                await backoff.wait(log, "Redis unavailable while checking the shared limits", e)
        deferred: dict[ExecutionId, list[tuple[Held, Command]]] = defaultdict(list)
        for member, (held, limits), verdict in zip(members, limited, verdicts, strict=True):
            if verdict is None:
                self._admitted[held.key] = (member, limits, "none")
                continue
            t = held.task
            defer = Defer(NodeId(t.node_id), t.queued_seq, verdict.reason, verdict.until)
            deferred[t.execution_id].append((held, defer))
        if deferred:
            await self._defer(deferred)
        refused = {h.key for group in deferred.values() for h, _ in group}
        return [h for h in fresh if h.key not in refused]

    async def _defer(self, deferred: dict[ExecutionId, list[tuple[Held, Command]]]) -> None:
        """Record the deferrals, each task acknowledged with its own; a task whose deferral recorded nothing (stale,
        or its execution paused) is acknowledged too, unless it must stay pending (``keep_pending``)."""
        groups = list(deferred.items())
        transitions = [
            Transition(eid, [c for _, c in group], ack_if_recorded=[h.entry_id for h, _ in group],
                       traceparent=group[0][0].task.traceparent)
            for eid, group in groups
        ]  # fmt: skip
        try:
            outcomes = await self.store.transact(transitions)
            stale = []
            for (eid, group), outcome in zip(groups, outcomes, strict=True):
                if outcome.error is not None:
                    log.warning("could not defer tasks of %s: %s", eid, outcome.error)
                elif not outcome.events:
                    acks = [h.entry_id for h, _ in group if not keep_pending(outcome.state, h.task)]
                    stale += [Transition(eid, [], ack=acks)] if acks else []
            if stale:
                await self.store.transact(stale)
        except TRANSIENT:  # not recorded: the tasks stay pending and are reclaimed (their turns stay reserved)
            log.warning("could not defer %d execution(s)' tasks; they will be reclaimed", len(transitions))

    async def _node_limits(self, task: Task) -> NodeLimits | None:
        workflow = await self.workflows.get(task.workflow_id, task.workflow_version)
        node: NodeDef = workflow.node(task.node_id)
        limits = self.rules.for_node(task.workflow_id, node)
        if len(self._limits) >= CACHE_SIZE:
            self._limits.clear()
        self._limits[(task.workflow_id, task.workflow_version, task.node_id)] = limits
        return limits

    def ran(self, held: Held, command: Command) -> None:
        """The admitted try of ``held`` ran and asks to record ``command``: what its breaker learns from it."""
        admitted = self._admitted.get(held.key)
        if admitted is not None:
            self._admitted[held.key] = (admitted[0], admitted[1], outcome_of(command))

    def released(self, held: Held) -> None:
        """The task of ``held`` was let go: its try holds its limits no longer."""
        admitted = self._admitted.pop(held.key, None)
        if admitted is not None:
            self._ended.append(admitted)
            self._wakeup.set()

    async def run(self, refresh_s: float) -> None:
        """Until cancelled: tell the limits of the tries that ended, and keep the slots of running ones fresh."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + refresh_s
        while True:
            await wait_event(self._wakeup, next_refresh - loop.time())
            self._wakeup.clear()
            try:
                await self.flush()
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + refresh_s
                    await self.limiter.refresh([(m, lim) for m, lim, _ in self._admitted.values()])
            except TRANSIENT as e:  # the slots expire on their own; a breaker misses these outcomes
                log.warning("could not update the shared limits: %s", e)

    async def flush(self) -> None:
        ended, self._ended = self._ended, []
        try:
            await self.limiter.finish(ended)
        except BaseException:
            self._ended[:0] = ended  # told with the next flush
            raise


def outcome_of(command: Command) -> Outcome:
    """A breaker counts failures that a retry could cure (errors, timeouts, 5xx); a non-retryable failure (a 4xx,
    bad input) says nothing about the target's health."""
    if isinstance(command, Complete):
        return "success"
    if isinstance(command, Fail) and command.retryable:
        return "failure"
    return "none"


def _member(task: Task) -> str:
    return timer_member(task.execution_id, task.node_id, task.attempt)
