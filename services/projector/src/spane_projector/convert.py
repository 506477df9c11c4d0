"""Conversions between core values and Postgres column values.

JSON travels as text cast to ``jsonb`` in SQL (and back with ``::text``), so the projector works on any asyncpg
pool whatever jsonb codec it was given.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import msgspec
from spane_core.codec import TIME_FIELDS
from spane_core.events import Envelope, Event

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)

_json = msgspec.json.Encoder()
# jsonb rejects the NUL character, which JSON allows: an escaped NUL (one preceded by an even run of backslashes)
# becomes U+FFFD, so that one odd value cannot stall the projector.
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@functools.lru_cache(maxsize=4096)  # the events of a commit, and the rows they touch, share their time
def to_time(epoch_ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=epoch_ms)


def to_ms(moment: dt.datetime) -> int:
    return (moment - EPOCH) // _MS


def opt_time(epoch_ms: int | None) -> dt.datetime | None:
    return None if epoch_ms is None else to_time(epoch_ms)


def opt_ms(moment: dt.datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def json_text(value: Any) -> str:
    text = _json.encode(value).decode()
    return _NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def opt_json_text(value: Any) -> str | None:
    """SQL NULL for ``None``: the read models do not tell a JSON null from a missing value."""
    return None if value is None else json_text(value)


def from_json(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def _iso_ms(text: str) -> int:
    return to_ms(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def envelope_from_body(body: dict[str, Any]) -> Envelope:
    """The envelope an archived ``events.body`` was made from (the inverse of ``codec.envelope_to_dict``)."""
    payload = dict(body)
    seq, at = payload.pop("seq"), _iso_ms(payload.pop("at"))
    execution_id, workflow_id = payload.pop("executionId"), payload.pop("workflowId")
    for key in TIME_FIELDS:
        if isinstance(payload.get(key), str):
            payload[key] = _iso_ms(payload[key])
    payload["executionId"], payload["workflowId"] = execution_id, workflow_id  # execution.started carries them
    event: Event = msgspec.convert(payload, Event)
    return Envelope(execution_id=execution_id, workflow_id=workflow_id, seq=seq, at=at, event=event)
