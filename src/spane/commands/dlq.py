"""``spane dlq ls|retry|rm``: the dead letters, nodes that failed their last try."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table

from spane.client import UNSET
from spane.commands.common import client, handles_errors, out, parse_json

app = typer.Typer(no_args_is_help=True, help="Dead letters: list, retry (with edited input), remove.")


@app.command("ls")
@handles_errors
def list_dead_letters(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Only this workflow's.")] = None,
    execution: Annotated[str | None, typer.Option("--execution", "-e", help="Only this execution's.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """List dead letters, with the error and the input of the node's last try."""
    with client(ctx) as spane:
        page = spane.dead_letters(workflow_id=workflow, execution_id=execution, limit=limit)
    # The id (execution:node:attempt) is what retry and rm take: printed whole, whatever the terminal's width.
    table = Table(Column("id", no_wrap=True), "workflow", "attempts", "failed", "error", "input")
    for d in page.items:
        error = d.error.get("message", d.error) if isinstance(d.error, dict) else d.error
        table.add_row(
            d.id, d.workflow_id, str(d.attempts), d.failed_at or "", str(error or ""), json.dumps(d.input)[:60]
        )
    out.print(table)


@app.command("retry")
@handles_errors
def retry(
    ctx: typer.Context,
    dead_letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="Run it on this JSON (or @file) instead.")] = None,
) -> None:
    """Run the node again (on edited input when given) and revive its execution."""
    value = UNSET if input is None else parse_json(input, "--input")
    with client(ctx) as spane:
        spane.retry_dead_letter(dead_letter_id, value)
    out.print(f"dead letter {dead_letter_id}: retried")


@app.command("rm")
@handles_errors
def remove(ctx: typer.Context, dead_letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Delete a dead letter (its execution stays failed)."""
    with client(ctx) as spane:
        spane.delete_dead_letter(dead_letter_id)
    out.print(f"dead letter {dead_letter_id}: removed")
