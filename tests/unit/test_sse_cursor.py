"""The all-events stream's ids: where the client stands in every partition, read back exactly."""

from __future__ import annotations

import pytest
from spane_api.cursor import Cursor, event_id
from spane_api.live import Position


def test_one_partition_keeps_the_plain_position() -> None:
    position = Position(0, (1764567890123, 2), 1)
    assert event_id(position, {0: (position.entry, position.index)}, 1) == "0-1764567890123-2-1"
    cursor = Cursor.parse("0-1764567890123-2-1", 1)
    assert cursor is not None and cursor.head == position and cursor.sent == {0: ((1764567890123, 2), 1)}


def test_the_other_partitions_positions_travel_in_the_id_and_come_back_the_same() -> None:
    head = Position(1, (1_000_000, 0), 3)
    sent = {
        0: ((999_000, 0), 0),  # a second before
        1: (head.entry, head.index),
        2: ((1_000_250, 7), 2),  # after the head's entry: partitions interleave
        # 3: nothing sent there yet
    }
    text = event_id(head, sent, 4)
    assert text == "1-1000000-0-3~rs_-6y.7.2_"
    cursor = Cursor.parse(text, 4)
    assert cursor is not None and cursor.head == head and cursor.sent == sent and cursor.text == text


@pytest.mark.parametrize(
    "text",
    [
        "1-1000000-0-3~rs_",  # a field short
        "1-1000000-0-3~rs_-6y.7.2__",  # a field too many
        "1-1000000-0-3~rs_!_",  # not base 36
        "1-1000000-0-3~rs_1.2.3.4_",  # too many parts
        "1-1000000-0-3~zzzzzz__",  # before the epoch
        "4-1000000-0-3~___",  # no such partition
        "1-1000000-0-3",  # the other partitions missing
    ],
)
def test_an_id_this_stream_did_not_send_is_refused(text: str) -> None:
    assert Cursor.parse(text, 4) is None


def test_a_single_partition_id_with_a_tail_is_refused() -> None:
    assert Cursor.parse("0-1-0-0~x", 1) is None
