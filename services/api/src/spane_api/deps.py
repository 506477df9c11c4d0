"""The API's resources, built once in the app's lifespan and handed to every route as one typed object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import asyncpg
import msgspec
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from redis.asyncio import Redis
from spane_core.errors import ConfigurationError
from spane_core.observe.system import SystemGauges
from spane_core.observe.telemetry import Telemetry
from spane_core.readmodel import migrate
from spane_core.settings import Settings
from spane_core.store.connection import open_redis
from spane_core.store.executions import ExecutionStore
from spane_core.store.limiter import Limiter
from spane_core.store.payloads import PayloadStore
from spane_core.store.redis_repository import redis_execution_store
from spane_core.store.workflows import WorkflowRegistry
from spane_core.validation import NodeTypeSpec

from spane_api.live import EventHub
from spane_api.metrics import HttpMetrics

log = logging.getLogger(__name__)

MIGRATE_RETRY_S = 2.0
MIGRATE_TIMEOUT_S = 10.0
DB_COMMAND_TIMEOUT_S = 10.0


@dataclass
class Dependencies:
    settings: Settings
    redis: Redis
    db: asyncpg.Pool
    workflows: WorkflowRegistry
    executions: ExecutionStore
    payloads: PayloadStore  # large values (the claim check): stored on the way in, resolved on the way out
    node_types: Mapping[str, NodeTypeSpec | None]
    metrics: HttpMetrics
    hub: EventHub  # live events: the process's one reader of the commit streams, for every SSE client
    telemetry: Telemetry  # the process's metrics (every service of `spane dev`) and whether tracing is on
    system: SystemGauges  # gauges of the shared state, read afresh on each scrape of /metrics
    limiter: Limiter  # the shared circuit breakers and rate limits (read, and breakers reset)
    # Set once the read-model schema exists; until then /ready answers 503.
    schema_ready: asyncio.Event = field(default_factory=asyncio.Event)


# How a route asks for them: ``deps: Deps``. Not validated: they are built here, not sent by a client.
Deps = NamedDependency[SkipValidation[Dependencies]]


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(), decoder=msgspec.json.decode
        )


@contextlib.asynccontextmanager
async def open_dependencies(
    settings: Settings, node_types: Mapping[str, NodeTypeSpec | None], metrics: HttpMetrics, telemetry: Telemetry
) -> AsyncIterator[Dependencies]:
    if not settings.redis_url or not settings.database_url:
        raise ConfigurationError("the API needs SPANE_REDIS_URL and SPANE_DATABASE_URL")
    redis = open_redis(settings)
    # min_size=0: the API starts (and /ready says why it is not ready) while Postgres is still down.
    db = await asyncpg.create_pool(
        settings.database_url, min_size=0, max_size=10, init=_init_connection, command_timeout=DB_COMMAND_TIMEOUT_S
    )
    workflows = WorkflowRegistry(redis)
    deps = Dependencies(
        settings=settings,
        redis=redis,
        db=db,
        workflows=workflows,
        executions=redis_execution_store(redis, workflows, settings.partitions),
        # ``migrate`` before the first payload, in case the schema is not there yet (see _try_migrate below).
        payloads=PayloadStore(db, settings.payload_inline_max, settings.payload_cache_bytes, prepare=migrate),
        node_types=node_types,
        metrics=metrics,
        hub=EventHub(redis, settings.partitions),
        telemetry=telemetry,
        system=SystemGauges(telemetry.metrics, redis, db, settings.partitions),
        limiter=Limiter(redis, settings.partitions),
    )
    metrics.sse_streams.set_function(lambda: deps.hub.subscribers)
    live = asyncio.create_task(deps.hub.run(), name="spane-api-live-events")
    # One try at once, so that a healthy start is ready at once; while Postgres is away, retry in the background.
    migrating = None
    if not await _try_migrate(deps):
        migrating = asyncio.create_task(_migrate_until_done(deps), name="spane-api-migrate")
    try:
        yield deps
    finally:
        live.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await live
        if migrating is not None:
            migrating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await migrating
        await db.close()
        await redis.aclose()


async def _try_migrate(deps: Dependencies) -> bool:
    """Create or upgrade the read-model schema (``migrate`` is idempotent and advisory-locked)."""
    try:
        async with asyncio.timeout(MIGRATE_TIMEOUT_S), deps.db.acquire() as conn:
            await migrate(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        log.warning("read-model schema not ready yet (%s); retrying every %ss", e, MIGRATE_RETRY_S)
        return False
    deps.schema_ready.set()
    return True


async def _migrate_until_done(deps: Dependencies) -> None:
    while True:
        await asyncio.sleep(MIGRATE_RETRY_S)
        if await _try_migrate(deps):
            return
