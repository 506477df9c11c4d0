"""Which executions' logs reference which stored payloads (the claim check), for collecting them once no retained
execution does (``spane_projector.prune``).

A commit whose bytes do not hold the reference key references nothing: most commits are rejected by that one byte
search, and only the others are looked into.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from spane_core.claim_check import REF_KEY, references_in
from spane_core.codec import decode_envelopes

_MARK = REF_KEY.encode()


def payload_references(bodies: Iterable[bytes]) -> set[tuple[str, str]]:
    """``(payload id, execution id)`` of every reference in the events of these commit bodies."""
    found: set[tuple[str, str]] = set()
    for body in bodies:
        if _MARK not in body:
            continue
        for envelope in decode_envelopes(body):
            for pid in references_in(msgspec.to_builtins(envelope.event)):
                found.add((pid, envelope.execution_id))
    return found
