"""Cron triggers: each tick of each schedule starts its workflow once, however many schedulers run.

Every pass reads which workflows have schedules (kept by the registry with each version: a new version or a
deletion changes it at once) and the last tick each schedule fired, and fires the schedules whose latest tick is
newer. The tick's execution id derives from workflow, schedule and tick (``spane_core.schedules``), so two
schedulers firing the same tick, or one that crashed between the start and its record, start one execution.

Missed ticks (every scheduler down, or a pass slower than the ticks): only the latest tick is fired, never a
burst of the ones in between. A schedule seen for the first time fires from its next tick on.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from spane_core.errors import SpaneError
from spane_core.schedules import Schedule, latest_tick, next_tick, schedules_of, tick_execution_id
from spane_core.store.cron_runs import CronRuns
from spane_core.store.executions import ExecutionStore, now_ms
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry
from spane_core.usecases import start_execution
from spane_core.waiting import wait_event

log = logging.getLogger("spane.scheduler.cron")

CLEANUP_EVERY_S = 60.0


class CronLoop:
    def __init__(
        self,
        redis: Redis,
        workflows: WorkflowRegistry,
        executions: ExecutionStore,
        payloads: PayloadStore,
        interval_ms: int,
        *,
        traced: bool = False,
    ) -> None:
        self.redis = redis
        self.workflows = workflows
        self.executions = executions
        self.payloads = payloads
        self.traced = traced  # tracing is on: each tick's execution gets a trace of its own
        self.runs = CronRuns(redis)
        self.interval_s = interval_ms / 1000
        # Per schedule: (the last tick recorded, the tick after it), so a pass computes a tick only when one is due.
        self._next: dict[str, tuple[int, int | None]] = {}
        self._cleaned_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.fire_due()
            except Exception:
                log.exception("firing cron triggers failed")
            await wait_event(stop, self.interval_s)

    async def current(self) -> list[Schedule]:
        """The schedules of the latest version of every workflow that has any."""
        found = []
        for workflow_id, version in (await self.workflows.scheduled()).items():
            found.extend(schedules_of(await self.workflows.get(workflow_id, version)))
        return found

    async def fire_due(self, now: int | None = None) -> int:
        """Fire every schedule whose latest tick at ``now`` was not fired yet; returns how many were fired."""
        now = now_ms() if now is None else now
        schedules = await self.current()
        fired = 0
        for schedule, last in zip(schedules, await self.runs.last_runs([s.field for s in schedules]), strict=True):
            if last is None:
                await self.runs.arm(schedule.field, now)
                continue
            cached = self._next.get(schedule.field)
            upcoming = cached[1] if cached is not None and cached[0] == last.tick else next_tick(schedule, last.tick)
            self._next[schedule.field] = (last.tick, upcoming)
            if upcoming is None or upcoming > now:
                continue
            tick = latest_tick(schedule, now)  # the latest only: ticks missed in between are not replayed
            if tick is not None and tick > last.tick and await self._fire(schedule, tick):
                fired += 1
        if time.monotonic() - self._cleaned_at > CLEANUP_EVERY_S:
            self._cleaned_at = time.monotonic()
            await self._forget_gone({s.field for s in schedules})
        return fired

    async def _fire(self, schedule: Schedule, tick: int) -> bool:
        # Read again just before the start: a new version or a deletion since the pass began stops the schedule.
        version = (await self.workflows.scheduled()).get(schedule.workflow_id)
        if version is None:
            return False
        workflow = await self.workflows.get(schedule.workflow_id, version)
        if schedule not in schedules_of(workflow):
            return False
        execution_id = tick_execution_id(schedule, tick)
        try:
            started = await start_execution(
                self.redis, self.executions, self.payloads, workflow, schedule.input,
                execution_id=execution_id, traced=self.traced,
            )  # fmt: skip
        except SpaneError as e:
            log.error("schedule %r of %s could not start its tick: %s", schedule.cron, schedule.workflow_id, e)
            return False
        await self.runs.record(schedule.field, tick, execution_id)
        if started.created:
            log.info("schedule %r started %s of %s", schedule.cron, execution_id, schedule.workflow_id)
        return started.created

    async def _forget_gone(self, current: set[str]) -> None:
        """Drop the records of schedules that no workflow has any more (so one added back starts afresh)."""
        recorded = {f.decode() if isinstance(f, bytes) else str(f) for f in await self.redis.hkeys(self.runs.key)}
        await self.runs.forget(sorted(recorded - current))
        for field in set(self._next) - current:
            del self._next[field]
