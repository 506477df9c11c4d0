"""The `spane` command: `spane dev` runs everything in one process; `spane api|worker|projector|scheduler` one each;
the client commands (`apply`, `run`, `executions`, `watch`, `pause|resume|cancel`, `signal`, `dlq`, `workflows`)
talk to a running server (``SPANE_URL``, ``SPANE_API_TOKEN``) through ``spane.client``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated

import typer
import uvloop
from pydantic import ValidationError
from spane_core.errors import SpaneError
from spane_core.gc_tuning import tune_gc
from spane_core.observe import logs
from spane_core.settings import Settings

from spane.commands import dlq, executions, operations, workflows
from spane.commands.common import console
from spane.runtime import SERVICES, require_servers, run_services, start_embedded

app = typer.Typer(add_completion=False, no_args_is_help=True, help="SPANE workflow engine.")


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(envvar="SPANE_URL", help="The server of the client commands (default http://127.0.0.1:8000)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="SPANE_API_TOKEN", show_envvar=True, help="The API token, if the server needs one."),
    ] = None,
) -> None:
    """SPANE workflow engine: run its services, or steer a running one."""
    ctx.obj = (url, token)


app.command()(workflows.apply)
app.command()(executions.run)
app.command()(executions.rerun)
app.command()(executions.watch)
app.command()(executions.pause)
app.command()(executions.resume)
app.command()(executions.cancel)
app.command()(executions.signal)
app.add_typer(executions.app, name="executions")
app.add_typer(workflows.app, name="workflows")
app.add_typer(dlq.app, name="dlq")
app.add_typer(operations.breakers, name="breakers")
app.add_typer(operations.rate_limits, name="rate-limits")
app.add_typer(operations.schedules, name="schedules")

Port = Annotated[int | None, typer.Option(help="HTTP port of the API (default: SPANE_PORT or 8000).")]
Host = Annotated[str | None, typer.Option(help="Interface the API binds (default: SPANE_HOST or 127.0.0.1).")]


def _settings(port: int | None = None, host: str | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as e:
        for error in e.errors():
            name = "SPANE_" + "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"spane: {name}={error.get('input')!s}: {message}", err=True)
        raise typer.Exit(2) from None
    if port is not None:
        settings.port = port
    if host is not None:
        settings.host = host
    logs.configure(settings.log_level, settings.log_format)
    return settings


def _run(settings: Settings, names: tuple[str, ...], on_listening: Callable[[], None] | None = None) -> None:
    tune_gc()
    try:
        # uvloop: a faster event loop for every service of the process (the hot path is many small socket I/Os).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_services(settings, names, on_listening=on_listening))
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


@app.command()
def dev(port: Port = None, host: Host = None) -> None:
    """Run the API, a worker, the projector and the scheduler in one process.

    Without SPANE_REDIS_URL / SPANE_DATABASE_URL, starts an embedded Redis and Postgres with data under .spane/.
    """
    settings = _settings(port, host)
    try:
        stop_embedded = start_embedded(settings)
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(1) from None
    url = f"http://{settings.host}:{settings.port}"

    def up() -> None:  # once the API listens: a setting that stops the services first is the last word instead
        typer.echo(f"SPANE is up: {url}  (console at /, OpenAPI document at /schema/openapi.json)", err=True)

    try:
        _run(settings, SERVICES, up)
    finally:
        stop_embedded()


def _single(name: str) -> None:
    settings = _settings()
    try:
        require_servers(settings)
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(2) from None
    _run(settings, (name,))


@app.command()
def api(port: Port = None, host: Host = None) -> None:
    """Run the HTTP API (REST, OpenAPI, health, metrics)."""
    settings = _settings(port, host)
    try:
        require_servers(settings)
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(2) from None
    _run(settings, ("api",))


@app.command()
def worker() -> None:
    """Run a node worker."""
    _single("worker")


projector_app = typer.Typer(add_completion=False, invoke_without_command=True)
app.add_typer(projector_app, name="projector")


@projector_app.callback()
def projector(ctx: typer.Context) -> None:
    """Run the projector (event log -> Postgres read models); `spane projector poison` for parked entries."""
    if ctx.invoked_subcommand is None:
        _single("projector")


@projector_app.command("rebuild")
def projector_rebuild() -> None:
    """Rebuild every read model from the archive and the log into fresh tables and swap them in.

    Stop the projectors first: what they fold meanwhile would land in the retired tables (schema spane_retired).
    """
    import asyncpg
    from spane_core.store.connection import open_redis
    from spane_projector.rebuild import rebuild

    settings = _settings()
    try:
        require_servers(settings)
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(2) from None

    async def main() -> dict[str, int]:
        redis = open_redis(settings)
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await rebuild(redis, conn, settings.partitions)
        finally:
            await conn.close()
            await redis.aclose()

    for table, rows in asyncio.run(main()).items():
        typer.echo(f"{table}: {rows} rows")


@projector_app.command("poison")
def projector_poison(
    redrive: Annotated[list[str] | None, typer.Option(help="Re-drive this parked entry (its poison id).")] = None,
    redrive_all: Annotated[bool, typer.Option(help="Re-drive every parked entry.")] = False,
) -> None:
    """List the commit-stream entries the projector parked (it could not decode or fold them), or re-drive them."""
    from spane_core.store.connection import open_redis
    from spane_projector.poison import parked
    from spane_projector.poison import redrive as redrive_entries

    settings = _settings()
    if not settings.redis_url:
        typer.echo("spane: SPANE_REDIS_URL must be set", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        redis = open_redis(settings)
        try:
            if redrive or redrive_all:
                done = await redrive_entries(redis, settings.partitions, None if redrive_all else set(redrive or ()))
                for entry in done:
                    typer.echo(f"re-driven {entry.id} -> {entry.stream}")
                if not done and redrive_all:
                    typer.echo("no parked entries")
                missing = set(redrive or ()) - {e.id for e in done}
                if missing:
                    typer.echo(f"spane: no parked entry {', '.join(sorted(missing))}", err=True)
                    raise typer.Exit(1)
                return
            entries = await parked(redis, settings.partitions)
            for entry in entries:
                typer.echo(f"{entry.id}  {entry.stream} {entry.entry_id}  {entry.error}")
            if not entries:
                typer.echo("no parked entries")
        finally:
            await redis.aclose()

    asyncio.run(main())


@app.command()
def scheduler() -> None:
    """Run the scheduler (timers: delays and retry backoff; cron triggers)."""
    _single("scheduler")


@app.command("replay")
def replay_command(
    execution_id: Annotated[str, typer.Argument(help="The execution to rebuild from its log.")],
    at: Annotated[int | None, typer.Option("--at", help="Show the state after this event (its seq).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
) -> None:
    """Rebuild an execution from its event log with the pure core and print its timeline.

    Reads the log from Redis, or from the Postgres archive once it has left Redis, and says where the read model
    disagrees with it. Exits with 1 when it does.
    """
    from spane.replay import render, replay

    settings = _settings()
    if not settings.redis_url:
        typer.echo("spane: SPANE_REDIS_URL must be set (and SPANE_DATABASE_URL, for the archive)", err=True)
        raise typer.Exit(2)
    try:
        data = asyncio.run(replay(settings, execution_id, at))
    except SpaneError as e:
        typer.echo(f"spane: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(data))
    else:
        render(data, console())
    if data.get("disagreements"):
        raise typer.Exit(1)


def main() -> None:
    app()
