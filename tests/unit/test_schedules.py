"""Cron schedules, pure: ticks in IANA zones across DST, the latest tick, and each tick's derived execution id."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from spane_core.definition import Workflow, WorkflowDefinition
from spane_core.ids import WorkflowId
from spane_core.schedules import Schedule, latest_tick, next_tick, schedules_of, tick_execution_id


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp() * 1000)


def schedule(cron: str, timezone: str = "UTC") -> Schedule:
    return Schedule(WorkflowId("wf"), "key", cron, timezone, None)


def ticks(s: Schedule, after: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        nxt = next_tick(s, after)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


def workflow(triggers: list[dict[str, Any]], version: int = 1) -> Workflow:
    raw = {"id": "wf", "name": "wf", "nodes": [{"id": "a", "type": "transform"}], "triggers": triggers}
    return Workflow(msgspec.convert(raw, WorkflowDefinition), version)


def test_ticks_are_wall_clock_times_of_the_zone() -> None:
    paris = schedule("0 9 * * *", "Europe/Paris")
    assert ticks(paris, at(2026, 7, 1), 2) == [at(2026, 7, 1, 7), at(2026, 7, 2, 7)]  # CEST, UTC+2
    assert ticks(paris, at(2026, 12, 1), 1) == [at(2026, 12, 1, 8)]  # CET, UTC+1


def test_a_daily_tick_in_the_hour_repeated_in_autumn_fires_once() -> None:
    daily = schedule("30 2 * * *", "Europe/Paris")  # 2:30 happens twice on 2026-10-25
    assert ticks(daily, at(2026, 10, 24, 12), 2) == [at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)]
    assert latest_tick(daily, at(2026, 10, 25, 1, 45)) == at(2026, 10, 25, 0, 30)


def test_an_hourly_schedule_fires_every_real_hour_across_both_changes() -> None:
    hourly = schedule("0 * * * *", "Europe/Paris")
    autumn = ticks(hourly, at(2026, 10, 24, 22, 30), 5)
    assert autumn == [at(2026, 10, 24, 23), at(2026, 10, 25, 0), at(2026, 10, 25, 1), at(2026, 10, 25, 2),
                      at(2026, 10, 25, 3)]  # fmt: skip
    spring = ticks(hourly, at(2026, 3, 28, 23, 30), 3)
    assert spring == [at(2026, 3, 29, 0), at(2026, 3, 29, 1), at(2026, 3, 29, 2)]


def test_a_wall_time_skipped_in_spring_fires_after_the_gap() -> None:
    daily = schedule("30 2 * * *", "Europe/Paris")  # 2:30 does not exist on 2026-03-29
    assert ticks(daily, at(2026, 3, 28, 12), 2) == [at(2026, 3, 29, 1), at(2026, 3, 30, 0, 30)]


def test_six_fields_put_the_seconds_first_as_the_original_did() -> None:
    every_ten_seconds = schedule("*/10 * * * * *")
    assert ticks(every_ten_seconds, at(2026, 1, 1, 9, 41, 49), 3) == [
        at(2026, 1, 1, 9, 41, 50), at(2026, 1, 1, 9, 42), at(2026, 1, 1, 9, 42, 10)
    ]  # fmt: skip
    assert latest_tick(every_ten_seconds, at(2026, 1, 1, 9, 41, 59)) == at(2026, 1, 1, 9, 41, 50)
    daily = schedule("15 30 2 * * *", "Europe/Paris")  # 02:30:15; the hour is the third field
    assert ticks(daily, at(2026, 10, 24, 12), 2) == [at(2026, 10, 25, 0, 30, 15), at(2026, 10, 26, 1, 30, 15)]
    assert ticks(schedule("0 0 12 1 1 * 2030"), at(2026, 6, 1), 1) == [at(2030, 1, 1, 12)]  # 7 fields: a year last


def test_the_latest_tick_is_at_or_before_now() -> None:
    every_second = schedule("* * * * * *")
    assert latest_tick(every_second, at(2026, 1, 1, 0, 0, 5) + 999) == at(2026, 1, 1, 0, 0, 5)
    assert latest_tick(every_second, at(2026, 1, 1, 0, 0, 5)) == at(2026, 1, 1, 0, 0, 5)
    assert latest_tick(schedule("0 0 1 1 *"), at(2026, 6, 1)) == at(2026, 1, 1)


def test_a_tick_execution_id_is_derived_sortable_and_distinct() -> None:
    s = schedule("* * * * * *")
    assert tick_execution_id(s, at(2026, 1, 1)) == tick_execution_id(s, at(2026, 1, 1))
    ids = [tick_execution_id(s, at(2026, 1, 1, 0, 0, i)) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5 and all(len(i) == 26 for i in ids)
    other = Schedule(WorkflowId("other"), "key", s.cron, s.timezone, None)
    assert tick_execution_id(other, at(2026, 1, 1)) != ids[0]


def test_a_schedule_keeps_its_identity_across_versions_and_duplicates_are_one() -> None:
    trigger = {"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "UTC", "input": {"a": 1}}}
    (first,) = schedules_of(workflow([trigger, trigger], version=1))
    (again,) = schedules_of(workflow([trigger, {"type": "webhook", "config": {"path": "x"}}], version=2))
    assert first == again and first.input == {"a": 1}
    changed = {"type": "schedule", "config": {"cron": "*/5 * * * *", "input": {"a": 2}}}
    (other,) = schedules_of(workflow([changed]))
    assert other.key != first.key and other.timezone == "UTC"
