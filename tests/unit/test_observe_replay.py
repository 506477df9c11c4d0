"""Replay from the log: golden logs give their recorded timelines, and ``--at`` is the fold of a prefix."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from spane_core.events import Envelope
from spane_core.observe.replay import state_at, timeline_at, timeline_rows
from spane_core.state import evolve, fold

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NAMES = sorted(p.name.removesuffix(".events.json") for p in GOLDEN.glob("*.events.json"))


def _log(name: str) -> list[Envelope]:
    return msgspec.json.decode((GOLDEN / f"{name}.events.json").read_bytes(), type=list[Envelope])


def test_there_are_golden_logs() -> None:
    assert NAMES == ["cancelled", "dead-lettered", "diamond-retry"]


@pytest.mark.parametrize("name", NAMES)
def test_golden_log_replays_to_its_timeline(name: str) -> None:
    expected = json.loads((GOLDEN / f"{name}.timeline.json").read_text())
    assert timeline_rows(timeline_at(_log(name))) == expected


@pytest.mark.parametrize("name", NAMES)
def test_state_at_every_position_is_the_fold_of_that_prefix(name: str) -> None:
    log = _log(name)
    state = None
    for envelope in log:
        state = evolve(state, envelope.event, envelope.at)  # one event at a time, as the live store applied them
        assert state_at(log, envelope.seq) == state == fold(log[: envelope.seq])
    assert state_at(log) == state
