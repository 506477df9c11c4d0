"""Wiring of the scheduler service: timers today; cron triggers join here as a second loop (see ``loops``)."""

from __future__ import annotations

import asyncio
import logging

from spane_core.errors import ConfigurationError
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry

from spane_scheduler.timers import TimerLoop

log = logging.getLogger("spane.scheduler")


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    """Fire due timers until ``stop`` is set. Any number of schedulers may run side by side."""
    if not settings.redis_url:
        raise ConfigurationError("the scheduler needs SPANE_REDIS_URL (only `spane dev` starts an embedded Redis)")
    redis = open_redis(settings)
    try:
        store = redis_execution_store(redis, WorkflowRegistry(redis), settings.partitions)
        timers = TimerLoop(store, settings.partitions, settings.scheduler_interval_ms)
        # The seam for cron triggers: a CronLoop(redis, registry, store).run(stop) is added to this list.
        loops = [timers.run(stop)]
        log.info("scheduler: %d partition(s), every %d ms", settings.partitions, settings.scheduler_interval_ms)
        await asyncio.gather(*loops)
    finally:
        await redis.aclose()
