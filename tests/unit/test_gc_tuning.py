"""The service processes' garbage collection: the set-up is frozen out of every scan, and cycles are still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from spane_core.gc_tuning import YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    tune_gc()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_what_exists_at_set_up_is_frozen_and_young_collections_are_rarer(tuned: None) -> None:
    assert gc.get_freeze_count() > 1000  # the imported modules, classes and functions
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700


def test_reference_cycles_made_after_the_set_up_are_still_freed(tuned: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    for _ in range(30):  # allocate past the young (and middle) thresholds: the collector runs on its own
        junk: list[list[int]] = [[] for _ in range(YOUNG_THRESHOLD)]
        del junk
    assert gone() is None
