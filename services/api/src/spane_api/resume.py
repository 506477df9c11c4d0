"""Resuming the all-events stream after ``Last-Event-ID``: what the commit streams still hold, and where they do not.

The projector trims each commit stream once its entries are projected and older than the resume window
(``SPANE_EVENTS_RESUME_WINDOW_S``), and records the newest entry it removed in the stream's trim mark. A resume
within the window is replayed whole. A resume from before a partition's mark may have lost events there: it gets a
``Gap`` first (then what is still held, then live events), never a stream that looks complete and is not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from spane_core.codec import decode_envelopes
from spane_core.events import Envelope
from spane_core.keys import all_partitions
from spane_core.store.connection import as_text

from spane_api.cursor import Cursor
from spane_api.live import Position, Subscription, parse_entry_id

REPLAY_CHUNK = 500
GAP_EVENT = "gap"


@dataclass(frozen=True, slots=True)
class Gap:
    """Events of ``partition`` after ``last_event_id`` may be missing: the stream holds nothing older than
    ``oldest`` (None: nothing at all)."""

    partition: int
    last_event_id: str
    oldest: Position | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": GAP_EVENT,
            "partition": self.partition,
            "lastEventId": self.last_event_id,
            "oldestEventId": None if self.oldest is None else str(self.oldest),
            "message": (
                f"events of partition {self.partition} after {self.last_event_id} are no longer held (the commit"
                " streams keep projected events for SPANE_EVENTS_RESUME_WINDOW_S), so some may be missing here:"
                " reload the state you show (GET /api/executions, GET /api/executions/{id}); the stream goes on"
                " with the events still held, then live ones"
            ),
        }


async def replay(
    redis: Redis, partitions: int, subscription: Subscription, resume: Cursor
) -> AsyncIterator[tuple[Position, Envelope] | Gap]:
    """What the commit streams still hold after ``resume``, partition by partition, a ``Gap`` where they may have
    let some of it go. Each partition goes on after the last event the cursor says was sent there; one it knows
    nothing of, from the millisecond of the cursor's event."""
    for keys in all_partitions(partitions):
        partition = keys.partition
        after = resume.sent.get(partition)  # the last (entry, index) sent there, or None
        bound = after[0] if after is not None else (resume.head.entry[0], 0)
        start, first = f"{bound[0]}-{bound[1]}", True
        while True:
            entries: list[Any] = await redis.xrange(keys.events, min=start, count=REPLAY_CHUNK) or []
            ids = [parse_entry_id(as_text(raw_id)) for raw_id, _ in entries]
            # Read after the entries: a trim in between can only make this say "gap" where there was none.
            mark = await redis.get(keys.events_trimmed)
            if mark is not None:
                trimmed = parse_entry_id(as_text(mark))
                # First chunk: from ``bound`` on (inclusive), lost unless ``bound`` itself is still there. Later
                # chunks: after the last entry read (exclusive), lost if the trim went past it.
                lost = trimmed >= bound and (not ids or ids[0] != bound) if first else trimmed > bound
                if lost:
                    yield Gap(partition, resume.text, Position(partition, ids[0], 0) if ids else None)
            for entry, (_, fields) in zip(ids, entries, strict=True):
                body: bytes | None = (fields or {}).get(b"b")
                for index, envelope in enumerate(decode_envelopes(body) if body else []):
                    if after is not None and (entry, index) <= after:
                        continue
                    if subscription.wants(envelope):
                        yield Position(partition, entry, index), envelope
            if len(entries) < REPLAY_CHUNK:
                break
            bound, first = ids[-1], False
            start = f"({bound[0]}-{bound[1]}"
