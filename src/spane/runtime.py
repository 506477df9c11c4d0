"""Running services: each on its own (`spane worker`, ...) or all four in one process (`spane dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from spane_core.errors import ConfigurationError, SpaneError
from spane_core.observe.telemetry import Telemetry
from spane_core.settings import Settings

log = logging.getLogger("spane")

SERVICES = ("api", "worker", "projector", "scheduler")
SHUTDOWN_GRACE_S = 5
# Every service of one process shares its Telemetry: `spane dev` shows all their metrics on the API's /metrics.
ServiceMain = Callable[[Settings, asyncio.Event, Telemetry], Coroutine[Any, Any, None]]


def require_servers(settings: Settings) -> None:
    missing = [name for name, value in (("SPANE_REDIS_URL", settings.redis_url),
                                        ("SPANE_DATABASE_URL", settings.database_url)) if not value]  # fmt: skip
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set to run a single service; "
            "`spane dev` starts embedded servers when they are unset"
        )


async def run_api(settings: Settings, stop: asyncio.Event, telemetry: Telemetry) -> None:
    import uvicorn
    from spane_api.app import begin_stopping, create_app

    app = create_app(settings, telemetry=telemetry)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        # Open SSE streams never finish by themselves: on shutdown, requests get this long, then are cut (an SSE
        # client reconnects elsewhere with Last-Event-ID and loses nothing).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    # While it serves, uvicorn captures SIGINT/SIGTERM itself and exits; its exit sets ``stop`` for the other
    # services below. A stop from elsewhere (another service ended) asks uvicorn to exit.
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    telling = asyncio.create_task(_tell_when_exiting(server, lambda: begin_stopping(app)))
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    telling.cancel()
    stop.set()


async def _tell_when_exiting(server: Any, tell: Callable[[], None]) -> None:
    """Call ``tell`` once uvicorn begins to exit (on a signal it caught itself, or ``should_exit`` set here)."""
    while not server.should_exit:  # noqa: ASYNC110 (uvicorn sets a plain attribute, not an event)
        await asyncio.sleep(0.1)
    tell()


async def run_worker(settings: Settings, stop: asyncio.Event, telemetry: Telemetry) -> None:
    from spane_worker.service import run_worker as main

    await main(settings, stop, telemetry=telemetry)


async def run_projector(settings: Settings, stop: asyncio.Event, telemetry: Telemetry) -> None:
    from spane_projector.service import run_projector as main

    await main(settings, stop, telemetry=telemetry)


async def run_scheduler(settings: Settings, stop: asyncio.Event, telemetry: Telemetry) -> None:
    from spane_scheduler.service import run_scheduler as main

    await main(settings, stop, telemetry=telemetry)


MAINS: dict[str, ServiceMain] = {
    "api": run_api,
    "worker": run_worker,
    "projector": run_projector,
    "scheduler": run_scheduler,
}


async def run_services(
    settings: Settings,
    names: Sequence[str],
    stop: asyncio.Event | None = None,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Run the named services until SIGINT/SIGTERM or until one of them stops; a crash stops the others.
    ``on_listening`` is called once the API accepts connections (never, if the services stop before)."""
    stop = stop or asyncio.Event()
    telemetry = Telemetry.from_env()
    if settings.metrics_port is not None:
        telemetry.serve(settings.metrics_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks = {asyncio.create_task(MAINS[name](settings, stop, telemetry), name=name) for name in names}
    announcing = None if on_listening is None else asyncio.create_task(_when_listening(settings, on_listening))
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    if announcing is not None:
        announcing.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, SpaneError) and result.__cause__ is None:  # a refusal that says it all, such as a
            log.error("service %s stopped: %s", task.get_name(), result)  # setting: no traceback to read
        elif isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("service %s stopped with an error", task.get_name(), exc_info=result)
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise errors[0]


async def _when_listening(settings: Settings, then: Callable[[], None], every_s: float = 0.05) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else "::1" if settings.host == "::" else settings.host
    while True:
        try:
            _, writer = await asyncio.open_connection(host, settings.port)
        except OSError:
            await asyncio.sleep(every_s)
            continue
        writer.close()
        then()
        return


def start_embedded(settings: Settings) -> Callable[[], None]:
    """Start the embedded Redis and Postgres that the settings do not point elsewhere; returns their stopper."""
    from spane.embedded import PostgresServer, RedisServer

    data = Path(settings.data_dir).resolve()
    stoppers: list[Callable[[], None]] = []
    if not settings.redis_url:
        redis = RedisServer(data / "redis").start()
        settings.redis_url = redis.url
        stoppers.append(redis.stop)
        log.info("embedded Redis at %s (data in %s)", redis.url, data / "redis")
    if not settings.database_url:
        postgres = PostgresServer(data / "postgres").start()
        settings.database_url = postgres.url
        stoppers.append(postgres.stop)
        log.info("embedded Postgres at %s (data in %s)", postgres.url, data / "postgres")

    def stop() -> None:
        for stopper in reversed(stoppers):
            with contextlib.suppress(Exception):
                stopper()

    return stop
