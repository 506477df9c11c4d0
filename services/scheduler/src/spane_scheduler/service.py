"""Wiring of the scheduler service: the timer loop and the cron loop, side by side."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from spane_core.errors import ConfigurationError
from spane_core.observe.telemetry import Telemetry
from spane_core.readmodel import migrate
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.payloads import PayloadStore
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry

from spane_scheduler.cron import CronLoop
from spane_scheduler.timers import TimerLoop

log = logging.getLogger("spane.scheduler")


async def run_scheduler(settings: Settings, stop: asyncio.Event, *, telemetry: Telemetry | None = None) -> None:
    """Fire due timers until ``stop`` is set. Any number of schedulers may run side by side."""
    telemetry = telemetry if telemetry is not None else Telemetry.from_env()
    if not settings.redis_url:
        raise ConfigurationError("the scheduler needs SPANE_REDIS_URL (only `spane dev` starts an embedded Redis)")
    redis = open_redis(settings)
    # Only a schedule's input over SPANE_PAYLOAD_INLINE_MAX is stored in Postgres; min_size=0 connects then.
    db = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=2) if settings.database_url else None
    try:
        workflows = WorkflowRegistry(redis)
        store = redis_execution_store(redis, workflows, settings.partitions)
        timers = TimerLoop(store, settings.partitions, settings.scheduler_interval_ms, metrics=telemetry.metrics)
        loops = [timers.run(stop)]
        if db is None:
            log.warning("cron triggers are off: the scheduler needs SPANE_DATABASE_URL for them")
        else:
            payloads = PayloadStore(db, settings.payload_inline_max, settings.payload_cache_bytes, prepare=migrate)
            cron = CronLoop(redis, workflows, store, payloads, settings.scheduler_interval_ms, traced=telemetry.tracing)
            loops.append(cron.run(stop))
        log.info("scheduler: %d partition(s), every %d ms", settings.partitions, settings.scheduler_interval_ms)
        await asyncio.gather(*loops)
    finally:
        if db is not None:
            await db.close()
        await redis.aclose()
