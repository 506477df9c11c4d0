"""Cron schedules (pure): a workflow's schedules, their ticks in an IANA time zone, and each tick's execution id.

A tick's execution id derives from the workflow, the schedule and the tick time, so whichever scheduler fires a tick,
however many race and however often one restarts, the tick starts one execution: a second start of the same id
is a no-op. A schedule is known by a digest of its settings, so a new version that keeps a schedule unchanged does
not fire its ticks again.

Daylight saving time: ticks are local wall-clock times in the schedule's zone. A wall time skipped by the spring
change fires at the first instant after the gap (croniter's rule); in the hour repeated in autumn, a schedule with
a fixed hour fires at the first occurrence only, while one whose hour field is ``*`` fires in both (every hour
of real time is one of its hours).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from croniter import croniter

from spane_core.definition import Workflow
from spane_core.ids import ExecutionId, WorkflowId
from spane_core.trigger_rules import has_seconds

DEFAULT_TIMEZONE = "UTC"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MAX_SKIPS = 8  # repeated-hour ticks skipped in a row at most (an hour of ticks every ~8 minutes is plenty)


@dataclass(frozen=True, slots=True)
class Schedule:
    workflow_id: WorkflowId
    key: str  # a digest of cron, timezone and input: the schedule's identity across versions
    cron: str
    timezone: str
    input: Any

    @property
    def field(self) -> str:
        """Its field in the hash of last runs (``WorkflowKeys.cron_runs``)."""
        return f"{self.workflow_id} {self.key}"


def schedules_of(workflow: Workflow) -> list[Schedule]:
    """The workflow's schedule triggers, each once (two identical schedules are one)."""
    found: dict[str, Schedule] = {}
    for trigger in workflow.definition.triggers:
        if trigger.type != "schedule":
            continue
        cron = str(trigger.config["cron"])
        timezone = str(trigger.config.get("timezone") or DEFAULT_TIMEZONE)
        value = trigger.config.get("input")
        settings = msgspec.json.encode({"cron": cron, "timezone": timezone, "input": value}, order="sorted")
        key = hashlib.sha256(settings).hexdigest()[:16]
        found.setdefault(key, Schedule(workflow.id, key, cron, timezone, value))
    return list(found.values())


def latest_tick(schedule: Schedule, now_ms: int) -> int | None:
    """The last tick at or before ``now_ms`` (epoch ms), or None when there is none in the last ~year."""
    zone = ZoneInfo(schedule.timezone)
    start = dt.datetime.fromtimestamp(now_ms // 1000 + 1, tz=dt.UTC).astimezone(zone)
    ticks = croniter(schedule.cron, start, second_at_beginning=has_seconds(schedule.cron))
    for _ in range(_MAX_SKIPS):
        try:
            moment: dt.datetime = ticks.get_prev(dt.datetime)
        except (ValueError, KeyError):  # croniter found none in its search window
            return None
        if not _repeated_hour_tick(schedule, moment):
            return _ms(moment)
    return None


def next_tick(schedule: Schedule, after_ms: int) -> int | None:
    """The first tick strictly after ``after_ms``, or None when there is none in the next ~year."""
    zone = ZoneInfo(schedule.timezone)
    after = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC).astimezone(zone)
    ticks = croniter(schedule.cron, after, second_at_beginning=has_seconds(schedule.cron))
    for _ in range(_MAX_SKIPS):
        try:
            moment: dt.datetime = ticks.get_next(dt.datetime)
        except (ValueError, KeyError):
            return None
        if not _repeated_hour_tick(schedule, moment):
            return _ms(moment)
    return None


def _repeated_hour_tick(schedule: Schedule, moment: dt.datetime) -> bool:
    """A tick in the second pass of an hour that autumn's change repeats, for a schedule with a fixed hour."""
    local = moment.astimezone(ZoneInfo(schedule.timezone))
    if local.fold == 0 or local.replace(fold=0).utcoffset() == local.utcoffset():
        return False
    fields = schedule.cron.split()
    hour_field = fields[2 if has_seconds(schedule.cron) else 1] if len(fields) >= 5 else ""
    return not hour_field.startswith("*")


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def tick_execution_id(schedule: Schedule, tick_ms: int) -> ExecutionId:
    """The execution id of a tick: a ULID whose time is the tick and whose 80 other bits are a digest of the
    workflow, the schedule and the tick. Sorts by time like any execution id; the same for every scheduler."""
    digest = hashlib.sha256(f"{schedule.workflow_id}\n{schedule.key}\n{tick_ms}".encode()).digest()
    value = (tick_ms << 80) | int.from_bytes(digest[:10], "big")
    return ExecutionId("".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26))))
