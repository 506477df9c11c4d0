"""A least-recently-used map bounded by a byte budget (and optionally an entry count).

The caller gives each value's size, because only it knows a cheap measure (an encoded length it already has).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Values by key, least recently used first out, holding at most ``max_bytes`` (and ``max_items``)."""

    def __init__(self, max_bytes: int, max_items: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.size = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """Keys from the least to the most recently used."""
        return iter(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        self.pop(key)
        self._entries[key] = (value, size)
        self.size += size
        while self._entries and (
            self.size > self.max_bytes or (self.max_items is not None and len(self._entries) > self.max_items)
        ):
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= evicted

    def weight(self, key: K) -> int:
        """The size ``key`` was put with (0: not held)."""
        entry = self._entries.get(key)
        return 0 if entry is None else entry[1]

    def touch(self, key: K) -> bool:
        """Mark ``key`` as just used; whether it is held."""
        if key not in self._entries:
            return False
        self._entries.move_to_end(key)
        return True

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.size -= entry[1]
        return entry[0]
