"""The projector's pure parts: archived event bodies read back, stream positions, JSON for jsonb."""

from __future__ import annotations

import msgspec
import pytest
from spane_core.codec import envelope_to_dict
from spane_core.events import (
    Envelope,
    ErrorInfo,
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionStarted,
    NodeCancelled,
    NodeDeadLettered,
    NodeFailed,
    NodeQueued,
    NodeWaiting,
)
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_projector.convert import envelope_from_body, json_text, to_ms, to_time
from spane_projector.rows import stream_pos

E, W, N = ExecutionId("01JEXEC"), WorkflowId("wf"), NodeId("n")
ERR = ErrorInfo(message="boom", type="X")

EVENTS: list[Event] = [
    ExecutionStarted(execution_id=E, workflow_id=W, workflow_version=3, input={"a": [1, None]}, depth=2),
    NodeQueued(node_id=N, attempt=2, input_override=None, has_input_override=True),
    NodeFailed(node_id=N, attempt=1, error=ERR, will_retry=True, retry_at=1_780_000_000_123),
    NodeWaiting(node_id=N, reason="delay", until=1_780_000_009_999),
    NodeWaiting(node_id=N, reason="sub-workflow", child_execution_id=ExecutionId("01JCHILD")),
    NodeDeadLettered(node_id=N, attempt=3, error=ERR, input="x"),
    NodeCancelled(node_id=N),
    ExecutionFailed(error=ERR, node_id=N),
    ExecutionCancelled(reason="user"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_archived_body_reads_back_as_its_envelope(event: Event) -> None:
    envelope = Envelope(execution_id=E, workflow_id=W, seq=7, at=1_780_000_000_001, event=event)
    body = msgspec.json.decode(json_text(envelope_to_dict(envelope)))
    assert envelope_from_body(body) == envelope


def test_times_round_trip_to_the_millisecond() -> None:
    for ms in (0, 1, 999, 1_780_000_000_001):
        assert to_ms(to_time(ms)) == ms


def test_stream_positions_order_like_entry_ids() -> None:
    ids = ["1-0", "1-1", "1-12", "2-0", "1780000000000-3"]
    assert sorted(ids, key=stream_pos) == ids


def test_a_nul_character_does_not_reach_jsonb() -> None:
    text = json_text({"s": "a\x00b", "t": "\\u0000"})
    assert msgspec.json.decode(text) == {"s": "a\ufffdb", "t": "\\u0000"}
