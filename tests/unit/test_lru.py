from __future__ import annotations

from spane_core.lru import ByteLRU


def test_the_least_recently_used_goes_first_when_over_the_byte_budget() -> None:
    lru: ByteLRU[str, str] = ByteLRU(max_bytes=10)
    lru.put("a", "A", 4)
    lru.put("b", "B", 4)
    assert lru.get("a") == "A"  # now "b" is the least recent
    lru.put("c", "C", 4)
    assert list(lru) == ["a", "c"] and lru.size == 8
    assert lru.get("b") is None


def test_the_entry_count_bounds_it_too() -> None:
    lru: ByteLRU[int, int] = ByteLRU(max_bytes=1_000, max_items=2)
    for n in range(5):
        lru.put(n, n, 1)
    assert list(lru) == [3, 4] and lru.size == 2


def test_replacing_and_popping_keep_the_byte_count() -> None:
    lru: ByteLRU[str, str] = ByteLRU(max_bytes=100)
    lru.put("a", "x", 10)
    lru.put("a", "y", 30)
    assert lru.size == 30 and lru.get("a") == "y"
    assert lru.pop("a") == "y" and lru.pop("a") is None
    assert lru.size == 0 and len(lru) == 0 and "a" not in lru


def test_touch_marks_as_used_without_replacing() -> None:
    lru: ByteLRU[str, str] = ByteLRU(max_bytes=8)
    lru.put("a", "A", 4)
    lru.put("b", "B", 4)
    assert lru.touch("a") and not lru.touch("z")
    lru.put("c", "C", 4)
    assert list(lru) == ["a", "c"]
