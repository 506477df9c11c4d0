"""``spane breakers|rate-limits|schedules``: the shared circuit breakers and rate limits, and the cron schedules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from spane.commands.common import client, handles_errors, out

BREAKER_STYLES = {"closed": "green", "half_open": "yellow", "open": "red"}

breakers = typer.Typer(no_args_is_help=True, help="Circuit breakers: list them, close one.")
rate_limits = typer.Typer(no_args_is_help=True, help="Rate-limit buckets: list them.")
schedules = typer.Typer(no_args_is_help=True, help="Cron schedules: list them.")


@breakers.command("ls")
@handles_errors
def list_breakers(ctx: typer.Context) -> None:
    """Every circuit breaker, with its state, counts and when an open one lets a probe through."""
    with client(ctx) as spane:
        items = spane.breakers()
    table = Table(Column("breaker", no_wrap=True), "state", "failures", "successes", "open until", "thresholds")
    for b in items:
        thresholds = f"{b.failure_threshold} fail / {b.success_threshold} ok / {b.timeout_ms} ms"
        state = Text(b.state, style=BREAKER_STYLES.get(b.state, ""))
        table.add_row(b.name, state, str(b.failures), str(b.successes), b.open_until or "", thresholds)
    out.print(table)


@breakers.command("reset")
@handles_errors
def reset_breaker(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The breaker's name.")]) -> None:
    """Close a breaker: the nodes it deferred run at once."""
    with client(ctx) as spane:
        spane.reset_breaker(name)
    out.print(f"breaker {name}: closed")


@rate_limits.command("ls")
@handles_errors
def list_buckets(ctx: typer.Context) -> None:
    """Every rate-limit bucket, with the tokens available now and the nodes waiting for a later turn."""
    with client(ctx) as spane:
        items = spane.rate_limits()
    table = Table(Column("bucket", no_wrap=True), "rate", "available", "reserved")
    for b in items:
        table.add_row(b.name, f"{b.max} per {b.per_ms} ms", str(b.available), str(b.reserved))
    out.print(table)


@schedules.command("ls")
@handles_errors
def list_schedules(ctx: typer.Context) -> None:
    """Every cron schedule, with its next and last run and the execution that last run started."""
    with client(ctx) as spane:
        items = spane.schedules()
    table = Table(Column("workflow", no_wrap=True), "cron", "timezone", "next run", "last run", "last execution")
    for s in items:
        table.add_row(
            s.workflow_id, s.cron, s.timezone, s.next_run_at or "", s.last_run_at or "", s.last_execution_id or ""
        )
    out.print(table)
