"""Failures that pass: Redis or Postgres unreachable for a moment, or a connection pool briefly full.

Work that hits one is retried in place after a short backoff (``Backoff``), by the process that holds it; leaving it
for another process to reclaim after the visibility timeout would stall it for that long and could run a node's
side effects twice.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spane_core.errors import StorageUnavailable

# The store's clients raise StorageUnavailable (PayloadsUnavailable is one); the driver's own errors are listed
# for clients opened some other way (MaxConnectionsError and a full pool's wait are ConnectionErrors too).
TRANSIENT: tuple[type[Exception], ...] = (StorageUnavailable, RedisConnectionError, RedisTimeoutError)


# Refusals by Redis that pass: a failover (READONLY, MASTERDOWN), a long script (BUSY), a cluster resharding
# (MOVED, ASK, TRYAGAIN, CLUSTERDOWN), memory that frees up (OOM). Any other refusal fails the same way every time.
_PASSING_CODES = ("BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "MOVED", "ASK", "LOADING")


def refused_for_good(error: BaseException) -> bool:
    """Whether Redis refused a command for a reason that trying again will not change (a script error, a key of
    another type, a value it does not take)."""
    if not isinstance(error, ResponseError) or isinstance(error, NoScriptError | OutOfMemoryError | ReadOnlyError):
        return False
    return not str(error).startswith(_PASSING_CODES)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


class Backoff:
    """Exponential waits between tries of one piece of work: ``first`` seconds, doubling up to ``cap``."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.tries = 0

    def next_delay(self) -> float:
        delay: float = min(self.first * 2**self.tries, self.cap)
        self.tries += 1
        return delay

    async def wait(self, log: logging.Logger, what: str, error: BaseException) -> None:
        delay = self.next_delay()
        log.warning("%s: %s; trying again in %.2f s", what, error or type(error).__name__, delay)
        await asyncio.sleep(delay)
