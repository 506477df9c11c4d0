"""The worker's event-loop lag: how late a short sleep wakes up. A node that blocks the loop (CPU work that is not
marked ``cpu=True``, a blocking call) delays every read, commit and heartbeat of the worker; the lag shows it.

The lag is logged, with the nodes running on the loop at that moment, when it passes ``SPANE_WORKER_LOOP_LAG_WARN_MS``,
and published (the worst of each period) to a Redis hash that the API's ``/metrics`` serves as
``spane_worker_event_loop_lag_seconds{worker="..."}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from spane_core.keys import WORKER_LAG

log = logging.getLogger("spane.worker")

TICK_S = 0.1
PUBLISH_EVERY_S = 5.0


class LoopLag:
    def __init__(
        self, redis: Redis, worker: str, on_loop: Callable[[], list[str]], warn_ms: int, tick_s: float = TICK_S
    ) -> None:
        self.redis = redis
        self.worker = worker
        self.on_loop = on_loop
        self.warn_s = warn_ms / 1000
        self.tick_s = tick_s
        self.worst_s = 0.0

    async def run(self) -> None:
        """Measure until cancelled."""
        published = time.monotonic()
        while True:
            running = self.on_loop()
            before = time.monotonic()
            await asyncio.sleep(self.tick_s)
            lag = max(0.0, time.monotonic() - before - self.tick_s)
            running = list(dict.fromkeys([*running, *self.on_loop()]))
            self.worst_s = max(self.worst_s, lag)
            if lag >= self.warn_s:
                blocking = ", ".join(running) or "none (not a node)"
                log.warning("the event loop was blocked for %d ms; nodes running on it: %s", lag * 1000, blocking)
            if time.monotonic() - published >= PUBLISH_EVERY_S:
                published = time.monotonic()
                await self.publish()

    async def publish(self) -> None:
        worst, self.worst_s = self.worst_s, 0.0
        try:
            await self.redis.hset(WORKER_LAG, self.worker, f"{worst:.6f}|{int(time.time())}")
        except Exception:  # a metric must never stop the worker
            log.debug("publishing the loop lag failed", exc_info=True)
