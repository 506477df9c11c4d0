"""``/api/schedules``: the cron schedules of every workflow's latest version, with their next and last runs."""

from __future__ import annotations

from litestar import get
from spane_core.codec import iso_ms
from spane_core.schedules import next_tick, schedules_of
from spane_core.store.cron_runs import CronRuns
from spane_core.store.executions import now_ms

from spane_api.deps import Deps
from spane_api.schemas import ScheduleList, ScheduleView


@get("/", summary="List the cron schedules: next run, last run and the execution it started")
async def list_schedules(deps: Deps) -> ScheduleList:
    schedules = []
    for workflow_id, version in sorted((await deps.workflows.scheduled()).items()):
        schedules.extend(schedules_of(await deps.workflows.get(workflow_id, version)))
    last_runs = await CronRuns(deps.redis).last_runs([s.field for s in schedules])
    now = now_ms()
    items = []
    for schedule, last in zip(schedules, last_runs, strict=True):
        fired = last is not None and last.execution_id is not None
        upcoming = next_tick(schedule, now)
        items.append(
            ScheduleView(
                workflow_id=schedule.workflow_id,
                cron=schedule.cron,
                timezone=schedule.timezone,
                next_run_at=None if upcoming is None else iso_ms(upcoming),
                last_run_at=iso_ms(last.tick) if last is not None and fired else None,
                last_execution_id=last.execution_id if last is not None else None,
            )
        )
    return ScheduleList(items=items)


HANDLERS = [list_schedules]
