"""Which executions' logs reference which stored payloads (the claim check), for collecting them once no retained
execution does (``spane_projector.prune``).

A commit whose bytes do not hold the reference key references nothing: most commits are passed over by that one
byte search. In the others, only the events' free-form fields (inputs, outputs) are looked into, and a reference
this projector recorded lately is not written again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from spane_core.claim_check import REF_KEY, references_in
from spane_core.events import Envelope

_MARK = REF_KEY.encode()
RECORDED_KEPT = 65_536  # references remembered as recorded (~200 bytes each)

Reference = tuple[str, str]  # (payload id, execution id)

_value_fields: dict[type, tuple[str, ...]] = {}


def _fields_of(event_type: type) -> tuple[str, ...]:
    """The fields of an event type that hold arbitrary values (``Any``), where references may be."""
    found = _value_fields.get(event_type)
    if found is None:
        found = tuple(f.name for f in msgspec.structs.fields(event_type) if f.type is Any)
        _value_fields[event_type] = found
    return found


def payload_references(commits: Iterable[tuple[bytes, Sequence[Envelope]]]) -> set[Reference]:
    """Every reference in these commits (each its body and its envelopes)."""
    found: set[Reference] = set()
    for body, envelopes in commits:
        if _MARK not in body:
            continue
        for envelope in envelopes:
            event = envelope.event
            for name in _fields_of(type(event)):
                value = getattr(event, name)
                if isinstance(value, dict | list):
                    found.update((pid, envelope.execution_id) for pid in references_in(value))
    return found


class RecordedReferences:
    """The references this projector recorded lately: a batch writes only the others."""

    def __init__(self, kept: int = RECORDED_KEPT) -> None:
        self.kept = kept
        self._recorded: OrderedDict[Reference, None] = OrderedDict()

    def new(self, references: set[Reference]) -> list[Reference]:
        return sorted(r for r in references if r not in self._recorded)

    def recorded(self, references: Iterable[Reference]) -> None:
        for reference in references:
            self._recorded[reference] = None
            self._recorded.move_to_end(reference)
        while len(self._recorded) > self.kept:
            self._recorded.popitem(last=False)
