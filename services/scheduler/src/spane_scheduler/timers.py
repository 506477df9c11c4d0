"""Due timers (retry backoff, delays) become ``FireTimer`` commands; an execution's own (its ``runAt``, its
deadline) ``FireExecutionTimer``.

Each tick reads the due members of every partition's timers zset and commits, per execution, the ``FireTimer``
commands together with the ZREM of their members (``drop_timers``) in the same atomic commit. Any number of
schedulers may run: when two race on one timer, the loser's decide sees the new state and emits nothing, so each
timer fires once. A timer of a paused execution is dropped without effect; resume runs what fell due meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from spane_core.commands import FireExecutionTimer, FireTimer
from spane_core.effects import timer_command
from spane_core.ids import ExecutionId
from spane_core.keys import PartitionKeys, all_partitions
from spane_core.observe.metrics import Metrics
from spane_core.store.executions import ExecutionStore, Transition, now_ms
from spane_core.waiting import wait_event

log = logging.getLogger("spane.scheduler")

BATCH = 500


class TimerLoop:
    def __init__(
        self, store: ExecutionStore, partitions: int, interval_ms: int, *, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.store = store
        self.repository = store.repository
        self.partitions = all_partitions(partitions)
        self.interval_s = interval_ms / 1000

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            busy = False
            try:
                for p in self.partitions:
                    busy |= await self.fire_due(p) >= BATCH
            except Exception:
                log.exception("firing timers failed")
            if not busy:  # a full batch means more are due: go on at once
                await wait_event(stop, self.interval_s)

    async def fire_due(self, p: PartitionKeys, now: int | None = None) -> int:
        """Fire up to ``BATCH`` due timers of partition ``p``; returns how many were read."""
        due = now if now is not None else now_ms()
        members = await self.repository.due_timers(p.partition, due, BATCH)
        if not members:
            return 0
        by_execution: dict[ExecutionId, list[str]] = defaultdict(list)
        commands: dict[ExecutionId, list[FireTimer | FireExecutionTimer]] = defaultdict(list)
        for member in members:
            try:
                execution_id, command = timer_command(member)
            except ValueError:
                log.error("dropping unreadable timer %r from %s", member, p.timers)
                await self.repository.drop_timers(p.partition, [member])
                continue
            by_execution[execution_id].append(member)
            commands[execution_id].append(command)
        transitions = [Transition(eid, commands[eid], drop_timers=dropped) for eid, dropped in by_execution.items()]
        for outcome in await self.store.transact(transitions):
            if outcome.error is not None:  # a missing execution still has its timer dropped by the commit
                log.warning("timers of %s: %s", outcome.execution_id, outcome.error, extra=_about(outcome.execution_id))
            else:
                self.metrics.timers_fired.inc(len(commands[outcome.execution_id]))
        return len(members)


def _about(execution_id: str) -> dict[str, str]:
    return {"executionId": execution_id}
