"""Typed identifiers and the (impure) generators the edges use to mint them."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
import zlib
from typing import NewType

WorkflowId = NewType("WorkflowId", str)
ExecutionId = NewType("ExecutionId", str)
NodeId = NewType("NodeId", str)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32; sorts by creation time. Without
    ``now_ms``, monotonic in this process: an id minted in the same millisecond as the last one (or while the clock
    stepped back) is the last one plus one, so that a process's ids sort in the order it minted them."""
    if now_ms is not None:
        return _ulid(now_ms, os.urandom(10))
    return _monotonic.next(int(time.time() * 1000))


class _Monotonic:
    """The ULID spec's monotonic factory: the last id's time and random part, moved on by one within a millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = -1
        self._random = 0

    def next(self, ms: int) -> str:
        with self._lock:
            if ms > self._ms:
                self._ms, self._random = ms, int.from_bytes(os.urandom(10), "big")
            elif self._random + 1 < _RANDOM_SPAN:
                self._random += 1
            else:  # 2**80 ids in one millisecond: borrow the next one
                self._ms, self._random = self._ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
            return _ulid(self._ms, self._random.to_bytes(10, "big"))


_RANDOM_SPAN = 1 << 80
_monotonic = _Monotonic()


def _forget_in_child() -> None:
    global _monotonic
    _monotonic = _Monotonic()  # a forked child moving on from its parent's last id would mint the parent's next


os.register_at_fork(after_in_child=_forget_in_child)


def derived_execution_id(now_ms: int, seed: str) -> ExecutionId:
    """A ULID whose 80 "random" bits are a hash of ``seed``: the same arguments give the same id (a pure function,
    for ids that a retry must find again, such as a sub-workflow's child), and it still sorts by ``now_ms``."""
    return ExecutionId(_ulid(now_ms, hashlib.sha256(seed.encode()).digest()[:10]))


def _ulid(ms: int, tail: bytes) -> str:
    value = (ms << 80) | int.from_bytes(tail, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def first_id_at(ms: int) -> str:
    """The smallest ULID of millisecond ``ms``: every id minted before it sorts below."""
    return _ulid(ms, bytes(10))


def new_execution_id(now_ms: int | None = None) -> ExecutionId:
    return ExecutionId(new_ulid(now_ms))


def partition_of(execution_id: str, partitions: int) -> int:
    """The partition an execution lives in; every key of the execution carries it as a hash tag."""
    if partitions <= 1:
        return 0
    return zlib.crc32(execution_id.encode()) % partitions


class _Leases:
    """Lease tokens: a random prefix per process and a counter. A lease fences a try of a node (a late result
    under an old lease is refused), so it must never repeat, but need not be unguessable: a counter is ~20x
    cheaper than the urandom read per commit that ``secrets.token_hex`` costs."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child must not repeat its parent's tokens

    def reset(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_leases = _Leases()


def new_lease() -> str:
    """A token that no other lease of any process takes (see ``_Leases``)."""
    return _leases.new()
