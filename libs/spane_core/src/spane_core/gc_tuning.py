"""Garbage collection tuned for a long-running service process.

Python's cyclic collector scans every tracked object of the generations it collects. A service imports thousands
of modules, classes and functions that live as long as the process, and with the default thresholds (a young
collection every 700 net allocations) its collector took 12-35 % of each service's CPU on the benchmark's diamond
(the projector the most: its full collections scanned the imported world each time). Two changes:

- ``gc.freeze()`` once the process is set up: what exists then moves to a permanent generation that collections
  no longer scan;
- a young collection every ``YOUNG_THRESHOLD`` net allocations instead of 700: most objects of the hot path die by
  reference counting long before, and the collector still runs, so reference cycles are still freed.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20  # young collections between two of the middle generation
OLD_THRESHOLD = 10  # middle collections between two full ones (which also wait for enough new long-lived objects)


def tune_gc() -> None:
    """Call once, after the imports and the set-up, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
