"""The rules of a workflow's triggers: a webhook (a URL path) or a schedule (a cron expression)."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadTypeRangeError, CroniterError, croniter

from spane_core.definition import TriggerDef
from spane_core.errors import FieldError
from spane_core.execution_options import MAX_WAIT_MS
from spane_core.fields import FieldReader, join_path, show

WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_WEBHOOK_AGE_S = 86_400  # a day: no longer than an idempotency key names its executions
_URL_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+\Z")
# minute hour day month weekday; 6 fields put seconds first, 7 add a year last (as BullMQ's cron-parser, which the
# original SPANE used, and Quartz read them: "*/10 * * * * *" is every ten seconds).
_CRON_FIELDS = (5, 6, 7)


def has_seconds(expression: str) -> bool:
    """Whether a cron expression starts with a seconds field (6 or 7 fields)."""
    return len(expression.split()) >= 6


def check_trigger(kind: str, config: dict[str, Any], path: str, errors: list[FieldError]) -> TriggerDef | None:
    """The typed trigger at ``path``, or None when its type is unknown; broken rules go to ``errors``."""
    reader = FieldReader(config, join_path(path, "config"), errors)
    match kind:
        case "webhook":
            _check_webhook(reader)
            _check_keys(reader, config, WEBHOOK_KEYS, "webhook")
            return TriggerDef(type="webhook", config=config)
        case "schedule":
            _check_schedule(reader)
            _check_keys(reader, config, SCHEDULE_KEYS, "schedule")
            return TriggerDef(type="schedule", config=config)
        case _:
            message = f"unknown trigger type {show(kind)} (known types: schedule, webhook)"
            errors.append(FieldError(join_path(path, "type"), message))
            return None


def _check_webhook(reader: FieldReader) -> None:
    path = reader.string("path", required=True, non_empty=True)
    if path is not None and not is_webhook_path(path):
        rule = "segments of letters, digits, '-', '_', '.' and '~' joined by '/', with no '/' at either end"
        reader.error("path", f"path must be {rule}, got {show(path)}")
    reader.choice("method", WEBHOOK_METHODS)
    secret = reader.string("secret", non_empty=True)
    max_age = reader.integer("maxAgeSeconds", minimum=1, maximum=MAX_WEBHOOK_AGE_S)
    if max_age is not None and secret is None:
        reader.error("maxAgeSeconds", "maxAgeSeconds needs a secret: the timestamp it checks is signed with it")
    reader.integer("waitMs", minimum=1, maximum=MAX_WAIT_MS)


def is_webhook_path(path: str) -> bool:
    return all(
        _URL_SAFE_SEGMENT.match(segment) is not None and segment not in (".", "..") for segment in path.split("/")
    )


WEBHOOK_KEYS = ("path", "method", "secret", "maxAgeSeconds", "waitMs")
SCHEDULE_KEYS = ("cron", "timezone", "input")


def _check_keys(reader: FieldReader, config: dict[str, Any], known: tuple[str, ...], kind: str) -> None:
    """Refuse a key that is a known one misspelt (``waitMS``) or another trigger type's: either would be ignored
    without a word, and the trigger would not do what its author meant."""
    by_form = {_form(key): key for key in known}
    other = WEBHOOK_KEYS if kind == "schedule" else SCHEDULE_KEYS
    for key in config:
        if key in known:
            continue
        if (meant := by_form.get(_form(key))) is not None:
            reader.error(key, f"unknown key {show(key)} of a {kind} trigger: did you mean {show(meant)}?")
        elif key in other:
            reader.error(key, f"{show(key)} is for {'webhook' if kind == 'schedule' else 'schedule'} triggers")


def _form(key: str) -> str:
    return key.replace("_", "").replace("-", "").casefold()


def _check_schedule(reader: FieldReader) -> None:
    cron = reader.string("cron", required=True, non_empty=True)
    if cron is not None and (problem := cron_problem(cron)) is not None:
        reader.error("cron", f"cron {show(cron)} is not a valid cron expression: {problem}")
    timezone = reader.string("timezone", non_empty=True)
    if timezone is not None and not _is_time_zone(timezone):
        reader.error("timezone", f"timezone {show(timezone)} is not an IANA time zone such as 'Europe/Paris'")


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression ``croniter`` accepts, or None when it is one.

    Strict: an expression that can never fire (``0 0 30 2 *``) is rejected too.
    """
    count = len(expression.split())
    if not expression.strip().startswith("@") and count not in _CRON_FIELDS:
        return (
            "expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, "
            f"or 7 with a year last, got {count}"
        )
    try:
        croniter.expand(expression, strict=True, second_at_beginning=has_seconds(expression))
    except (CroniterError, CroniterBadTypeRangeError) as e:
        # croniter says "[61 * * * *] is not acceptable, out of range"; keep the part that says why.
        detail = str(e).removeprefix(f"[{expression}]").strip(" .")
        if not detail.startswith("is not acceptable"):
            return detail
        match detail.removeprefix("is not acceptable").strip(" ,."):
            case "":
                return "a field has an unrecognized value"
            case "out of range":
                return "a field is out of range"
            case reason:
                return reason
    return None


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
