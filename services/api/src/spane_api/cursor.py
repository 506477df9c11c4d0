"""Where a client of the all-events stream is: each message's ``id:``, echoed back as ``Last-Event-ID``.

An event's position is ``<partition>-<ms>-<n>-<index>``: its commit's entry in the partition's commit stream and its
index in the commit. With one partition that is the whole id. With several, the id also carries the last position
sent on each other partition, so that a resume takes up every partition exactly where the client left it, nothing
repeated and nothing skipped: ``<position>~<f1>_<f2>...``, one field per other partition in order. A field is how
many ms before this event's entry that partition's last one was, in base 36 (``-`` when after), then ``.<n>`` and
``.<index>`` when not zero; it is empty when nothing of that partition was sent yet on the connection, and a resume
takes that partition up from this event's millisecond.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spane_api.live import Position

# The last (entry, index) sent, by partition.
Sent = dict[int, tuple[tuple[int, int], int]]

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_FIELD = re.compile(r"-?[0-9a-z]+(\.[0-9a-z]+){0,2}")


@dataclass(frozen=True, slots=True)
class Cursor:
    head: Position  # the event the id was sent with
    sent: Sent  # the last position sent on each partition known, the head's included
    text: str  # the id as the client gave it

    @staticmethod
    def parse(text: str, partitions: int) -> Cursor | None:
        """The cursor of an id this stream sent with ``partitions`` partitions; None when it is not one."""
        head_text, _, tail = text.strip().partition("~")
        head = Position.parse(head_text)
        if head is None or head.partition >= partitions:
            return None
        sent: Sent = {head.partition: (head.entry, head.index)}
        others = [q for q in range(partitions) if q != head.partition]
        fields = tail.split("_") if others else []
        if len(fields) != len(others) or (not others and tail):
            return None
        for q, field in zip(others, fields, strict=True):
            if not field:
                continue
            if not _FIELD.fullmatch(field):
                return None
            back, n, index = [*(int(part, 36) for part in field.split(".")), 0, 0][:3]
            if head.entry[0] - back < 0:
                return None
            sent[q] = ((head.entry[0] - back, n), index)
        return Cursor(head, sent, text.strip())


def event_id(position: Position, sent: Sent, partitions: int) -> str:
    """The ``id:`` of the event at ``position``, ``sent`` holding the last position sent on each partition."""
    if partitions == 1:
        return str(position)
    fields = []
    for q in range(partitions):
        if q == position.partition:
            continue
        last = sent.get(q)
        if last is None:
            fields.append("")
            continue
        (ms, n), index = last
        parts = [_base36(position.entry[0] - ms), _base36(n), _base36(index)]
        while len(parts) > 1 and parts[-1] == "0":
            parts.pop()
        fields.append(".".join(parts))
    return f"{position}~{'_'.join(fields)}"


def _base36(value: int) -> str:
    if value < 0:
        return "-" + _base36(-value)
    digits = ""
    while True:
        value, digit = divmod(value, 36)
        digits = _DIGITS[digit] + digits
        if not value:
            return digits
