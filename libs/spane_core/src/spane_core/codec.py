"""Encoding of everything SPANE stores or sends: msgpack inside Redis, JSON at the edges."""

from __future__ import annotations

import datetime
import functools
from typing import Any

import msgspec

from spane_core.effects import Task
from spane_core.events import SCHEMA_VERSION, Envelope
from spane_core.state import ExecutionState
from spane_core.workflow_events import WorkflowEvent

_enc = msgspec.msgpack.Encoder()
_state_dec = msgspec.msgpack.Decoder(ExecutionState)
_batch_dec = msgspec.msgpack.Decoder(list[Envelope])
_task_dec = msgspec.msgpack.Decoder(Task)
_wf_dec = msgspec.msgpack.Decoder(WorkflowEvent)
_raw_dec = msgspec.msgpack.Decoder()
_json_enc = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _enc.encode(value)


def decode_state(data: bytes) -> ExecutionState:
    return _state_dec.decode(data)


def decode_task(data: bytes) -> Task:
    return _task_dec.decode(data)


def decode_workflow_event(data: bytes) -> WorkflowEvent:
    event: WorkflowEvent = _wf_dec.decode(data)
    return event


def decode_envelopes(data: bytes) -> list[Envelope]:
    """A commit's envelopes. Older schema versions are upcast from their raw form first."""
    try:
        return _batch_dec.decode(data)
    except msgspec.ValidationError:
        raw = _raw_dec.decode(data)
        return [msgspec.convert(upcast(item), Envelope) for item in raw]


def decode_envelope(data: bytes) -> Envelope:
    return decode_envelopes(b"\x91" + data)[0]  # a one-element msgpack array around the stored item


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a raw envelope of an older schema version up to ``SCHEMA_VERSION``; none exist yet."""
    if raw.get("schemaVersion", 1) > SCHEMA_VERSION:
        raise ValueError(f"event schema version {raw['schemaVersion']} is newer than this SPANE understands")
    return raw


def to_json(value: Any) -> bytes:
    return _json_enc.encode(value)


# Event fields that hold epoch ms in the log and ISO 8601 times in the API.
TIME_FIELDS = ("retryAt", "until", "startedAt")


def envelope_to_dict(envelope: Envelope) -> dict[str, Any]:
    """The flat JSON shape of an event in the API, the SSE stream and the history."""
    payload = msgspec.to_builtins(envelope.event)
    out: dict[str, Any] = {
        "seq": envelope.seq,
        "type": payload.pop("type"),
        "at": iso_ms(envelope.at),
        "executionId": envelope.execution_id,
        "workflowId": envelope.workflow_id,
    }
    payload.pop("executionId", None)
    payload.pop("workflowId", None)
    for key in TIME_FIELDS:
        if payload.get(key) is not None:
            payload[key] = iso_ms(payload[key])
    out.update(payload)
    return out


def iso_ms(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-25T12:00:00.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(epoch_s: int) -> str:
    # The events of a batch fall in a few seconds: formatting each second once takes datetime off the hot path.
    return datetime.datetime.fromtimestamp(epoch_s, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
