"""Reading an execution's live events: the SSE wire format, and the history polled where SSE is not served."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from spane.client_models import FINAL_EVENTS, FINAL_STATUSES, ServerEvent

if TYPE_CHECKING:
    from spane.client import SpaneClient

POLL_S = 0.3


def parse_sse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Server-sent events (``event:``, ``data:``, ``id:`` lines, a blank line ends one; ``:`` lines are comments)."""
    kind, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                payload = json.loads("\n".join(data))
                body = payload if isinstance(payload, dict) else {"value": payload}
                yield ServerEvent(
                    type=str(body.get("type", kind)) if kind == "message" else kind, data=body, id=event_id
                )
            kind, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value


def follow_history(client: SpaneClient, execution_id: str, last_event_id: str | None) -> Iterator[ServerEvent]:
    """The same stream as the SSE route, from polling: the execution first (unless resuming after
    ``last_event_id``, a seq), then each new event of its log."""
    if last_event_id is None:
        execution = client.execution(execution_id)
        yield ServerEvent(type="execution.state", data=_builtins(execution))
        if execution.status in FINAL_STATUSES:
            return
    seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    while True:
        events = client.history(execution_id)
        for event in events:
            seq = int(event.get("seq", 0))
            if seq > seen:
                seen = seq
                yield ServerEvent(type=str(event.get("type")), data=event, id=str(seq))
                if event.get("type") in FINAL_EVENTS:
                    return
        if not events and client.execution(execution_id).status in FINAL_STATUSES:
            return
        time.sleep(POLL_S)


def _builtins(value: Any) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(value, str_keys=True)
    return built
