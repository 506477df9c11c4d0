"""How a worker splits its free room among the priority streams: higher first, nothing starved."""

from __future__ import annotations

from spane_core.keys import PRIORITIES
from spane_worker.bands import Shares


def take(shares: Shares, count: int, available: list[int]) -> list[int]:
    """One read as take.lua makes it: each stream gives up to its share, the rest goes highest first."""
    asked = shares.split(count)
    assert sum(asked) <= count
    got = [min(a, n) for a, n in zip(asked, available, strict=True)]
    left = count - sum(got)
    for i, (a, g) in enumerate(zip(asked, got, strict=True)):
        if left > 0 and g == a:
            more = min(left, available[i] - g)
            got[i] += more
            left -= more
    shares.settle(asked, [min(a, g) for a, g in zip(asked, got, strict=True)])
    return got


def test_under_a_backlog_everywhere_higher_priorities_take_more_and_every_one_progresses() -> None:
    shares = Shares(list(PRIORITIES))
    taken = [0] * 10
    for _ in range(200):
        for i, n in enumerate(take(shares, 20, [10**6] * 10)):
            taken[i] += n
    assert taken == sorted(taken, reverse=True)  # priority 10 first, 1 last
    assert taken[0] > 100 * taken[-1] > 0  # twice the weight per level, and priority 1 is not starved


def test_a_single_free_slot_still_reaches_the_lowest_priority() -> None:
    shares = Shares(list(PRIORITIES))
    taken = [0] * 10
    for _ in range(3000):
        for i, n in enumerate(take(shares, 1, [10**6] * 10)):
            taken[i] += n
    assert all(n > 0 for n in taken)


def test_one_busy_priority_gets_all_the_room_and_an_idle_one_saves_no_burst() -> None:
    shares = Shares(list(PRIORITIES))
    for _ in range(100):
        assert take(shares, 50, [0, 0, 0, 0, 0, 10**6, 0, 0, 0, 0]) == [0, 0, 0, 0, 0, 50, 0, 0, 0, 0]
    # Priority 10 was idle all along: it starts with no saved credit, so it takes its share, not the whole room.
    got = take(shares, 50, [10**6] * 10)
    assert sum(got) == 50 and got[0] < 50
