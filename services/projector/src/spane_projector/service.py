"""Wiring of the projector service: its Redis client and Postgres pool from the settings, run until stop."""

from __future__ import annotations

import asyncio
import logging

from spane_core.errors import ConfigurationError
from spane_core.observe.otel import span_emitter_from_env
from spane_core.observe.telemetry import Telemetry
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.workflows import WorkflowRegistry

from spane_projector.observer import Observer
from spane_projector.projector import Projector

log = logging.getLogger("spane.projector")


async def run_projector(settings: Settings, stop: asyncio.Event, *, telemetry: Telemetry | None = None) -> None:
    """Project the log into Postgres until ``stop`` is set (the schema is migrated first); with tracing on, export
    the spans made from the events it folds."""
    telemetry = telemetry if telemetry is not None else Telemetry.from_env()
    if not settings.redis_url or not settings.database_url:
        raise ConfigurationError(
            "the projector needs SPANE_REDIS_URL and SPANE_DATABASE_URL (only `spane dev` embeds them)"
        )
    redis = open_redis(settings)  # bytes replies: the entries are msgpack
    spans = span_emitter_from_env("spane-projector") if telemetry.tracing else None
    observer = Observer(telemetry.metrics, spans, WorkflowRegistry(redis))
    try:
        projector = Projector(
            redis,
            settings.database_url,
            consumer=settings.consumer_name,
            partitions=settings.partitions,
            retention_s=settings.execution_retention_s,
            resume_window_s=settings.events_resume_window_s,
            history_retention_s=settings.history_retention_s,
            observer=observer,
        )
        log.info("projector %s: %d partition(s)", settings.consumer_name, settings.partitions)
        await projector.run(stop)
    finally:
        observer.shutdown()
        await redis.aclose()
