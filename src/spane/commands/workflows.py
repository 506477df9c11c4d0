"""``spane apply -f FILE`` and ``spane workflows ls|get``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from spane.commands.common import client, fail, handles_errors, out, print_json

app = typer.Typer(no_args_is_help=True, help="Stored workflow definitions.")


def _load(path: Path) -> Any:
    try:
        text = path.read_text() if str(path) != "-" else typer.get_text_stream("stdin").read()
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror}", 2) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise fail(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {e}", 2) from None


@handles_errors
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="A workflow definition, .json or .yaml ('-': stdin).")],
) -> None:
    """Store a workflow definition: a new version, or unchanged when identical to the latest."""
    definition = _load(file)
    if not isinstance(definition, dict):
        raise fail(f"{file}: a workflow definition is an object", 2)
    with client(ctx) as spane:
        applied = spane.apply(definition)
    if applied.created:
        out.print(f"workflow {applied.workflow_id}: version {applied.version} created")
    else:
        out.print(f"workflow {applied.workflow_id}: unchanged (version {applied.version})")


@app.command("ls")
@handles_errors
def list_workflows(ctx: typer.Context) -> None:
    """List the workflows with their latest version and triggers."""
    with client(ctx) as spane:
        items = spane.workflows()
    table = Table("workflow", "name", "version", "triggers", "updated")
    for w in items:
        triggers = ", ".join(str(t.get("type", "?")) for t in w.triggers) or "-"
        table.add_row(w.workflow_id, w.name, str(w.version), triggers, w.updated_at)
    out.print(table)


@app.command("get")
@handles_errors
def get_workflow(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(help="The workflow id.")],
    version: Annotated[int | None, typer.Option(help="A version (default: the latest).")] = None,
) -> None:
    """Print a workflow's definition as JSON."""
    with client(ctx) as spane:
        print_json(spane.workflow(workflow_id, version).definition)
