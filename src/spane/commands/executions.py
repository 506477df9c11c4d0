"""``spane run``, ``spane executions ls|get``, ``spane watch``, ``spane pause|resume|cancel`` and ``spane signal``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text
from spane_core.state import ExecutionStatus

from spane.client import UNSET, SpaneClient
from spane.client_models import FINAL_EVENTS, Execution, ServerEvent
from spane.commands.common import client, err, fail, handles_errors, out, parse_json, print_json, status_text

app = typer.Typer(no_args_is_help=True, help="List and read executions.")

STATUSES = tuple(ExecutionStatus)

# A node is done (counts towards the progress bar) once one of these happened to it.
NODE_DONE = frozenset({"completed", "skipped", "cancelled", "dead_lettered", "failed"})
InputOption = Annotated[str, typer.Option("--input", "-i", help="The input as JSON, or @file.json.")]


def _exit_code(execution: Execution) -> int:
    return 0 if execution.status == "completed" else 1


def _done_nodes(event: ServerEvent, done: set[str]) -> None:
    """Record in ``done`` the nodes that ``event`` (a snapshot or a node event) shows resolved."""
    data = event.data
    nodes = data.get("nodes")
    if isinstance(nodes, dict):
        done.update(n for n, node in nodes.items() if isinstance(node, dict) and node.get("status") in NODE_DONE)
    node_id, kind = data.get("nodeId"), event.type.removeprefix("node.")
    if event.type.startswith("node.") and isinstance(node_id, str):
        if kind in NODE_DONE and not (kind == "failed" and data.get("willRetry")):
            done.add(node_id)
        else:
            done.discard(node_id)  # queued again: a dead letter retried


@handles_errors
def run(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(help="The workflow to start.")],
    input: InputOption = "null",
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow it to the end; exit 0 completed, 1 not.")] = False,
    version: Annotated[int | None, typer.Option(help="A version (default: the latest).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="The same key starts the same execution once.")] = None,
) -> None:
    """Start an execution; with --wait, show a progress bar of its nodes and print its output."""
    value = parse_json(input, "--input")
    with client(ctx) as spane:
        started = spane.start(workflow_id, value, version=version, idempotency_key=idempotency_key)
        if not wait:
            out.print(started.execution_id)
            return
        err.print(Text(f"execution {started.execution_id} (workflow {workflow_id} v{started.version})", style="dim"))
        total = len(spane.workflow(workflow_id, started.version).definition.get("nodes") or [])
        execution = _follow_with_progress(spane, started.execution_id, total)
    _print_outcome(execution)
    raise typer.Exit(_exit_code(execution))


@handles_errors
def rerun(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution to run again.")],
    from_node: Annotated[
        str | None, typer.Option("--from-node", help="Run from this node; the others keep their recorded outputs.")
    ] = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="Another input: JSON, or @file.json.")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow it to the end; exit 0 completed, 1 not.")] = False,
) -> None:
    """Run an execution again, as a new one linked to it (rerunOf): from the start, or from one of its nodes."""
    value = UNSET if input is None else parse_json(input, "--input")
    with client(ctx) as spane:
        started = spane.rerun(execution_id, from_node=from_node, input=value)
        if not wait:
            out.print(started.execution_id)
            return
        err.print(Text(f"execution {started.execution_id} (a re-run of {execution_id})", style="dim"))
        total = len(spane.workflow(started.workflow_id, started.version).definition.get("nodes") or [])
        execution = _follow_with_progress(spane, started.execution_id, total)
    _print_outcome(execution)
    raise typer.Exit(_exit_code(execution))


def _follow_with_progress(spane: SpaneClient, execution_id: str, total: int) -> Execution:
    done: set[str] = set()
    columns = (TextColumn("nodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task("nodes", total=total)
        for event in spane.events(execution_id, last_event_id="0"):
            _done_nodes(event, done)
            progress.update(bar, completed=len(done))
            if event.type in FINAL_EVENTS:
                break
        execution = spane.execution(execution_id)
        progress.update(bar, completed=sum(1 for n in execution.nodes.values() if n.status in NODE_DONE))
    return execution


def _print_outcome(execution: Execution) -> None:
    err.print(Text.assemble("status: ", status_text(execution.status)))
    if execution.error is not None:
        err.print(Text(f"error: {execution.error.type}: {execution.error.message}", style="red"))
    if execution.status == "completed":
        print_json(execution.output)


@app.command("ls")
@handles_errors
def list_executions(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Only this workflow's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help=f"Only those with this status: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next page: the cursor printed under the last one.")] = None,
) -> None:
    """List executions, newest first."""
    if status is not None and status not in STATUSES:
        raise fail(f"--status {status!r} is not one of {', '.join(STATUSES)}", 2)
    with client(ctx) as spane:
        page = spane.executions(workflow_id=workflow, status=status, limit=limit, cursor=cursor)
    table = Table(Column("execution", no_wrap=True), "workflow", "version", "status", "started", "finished")
    for e in page.items:
        table.add_row(
            e.execution_id, e.workflow_id, str(e.version), status_text(e.status), e.started_at, e.finished_at or ""
        )
    out.print(table)
    if page.next_cursor:
        out.print(Text(f"more: --cursor {page.next_cursor}", style="dim"))


@app.command("get")
@handles_errors
def get_execution(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON as it is.")] = False,
) -> None:
    """Show an execution: its status, each node's attempts and error, its output."""
    with client(ctx) as spane:
        execution = spane.execution(execution_id)
    if as_json:
        print_json(_builtins(execution))
        return
    out.print(
        Text.assemble(
            f"{execution.execution_id}  {execution.workflow_id} v{execution.version}  ", status_text(execution.status)
        )
    )
    if execution.parent_execution_id:
        out.print(f"parent: {execution.parent_execution_id}")
    for node_id, children in execution.children.items():  # a wait node there takes signals at the child's id
        out.print(f"children of {node_id}: {', '.join(children)}")
    out.print(f"started {execution.started_at}, finished {execution.finished_at or '-'}")
    table = Table("node", "status", "attempts", "error")
    for node_id, node in execution.nodes.items():
        error = f"{node.error.type}: {node.error.message}" if node.error else ""
        table.add_row(node_id, status_text(node.status), str(node.attempts), error)
    out.print(table)
    if execution.error is not None:
        out.print(Text(f"error: {execution.error.type}: {execution.error.message}", style="red"))
    if execution.output is not None:
        out.print("output:")
        print_json(execution.output)


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _describe(event: ServerEvent) -> str:
    data = event.data
    parts = []
    if "attempt" in data:
        parts.append(f"attempt {data['attempt']}")
    error = data.get("error")
    if isinstance(error, dict):
        parts.append(f"{error.get('type', 'Error')}: {error.get('message', '')}")
    if data.get("willRetry"):
        parts.append(f"retry at {data.get('retryAt')}")
    if data.get("reason"):
        parts.append(str(data["reason"]))
    if data.get("childExecutionId"):
        parts.append(f"child {data['childExecutionId']}")
    return ", ".join(parts)


@handles_errors
def watch(ctx: typer.Context, execution_id: Annotated[str, typer.Argument(help="The execution id.")]) -> None:
    """Print an execution's events live, as they are committed, until it ends (exit 0 completed, 1 not)."""
    with client(ctx) as spane:
        for event in spane.events(execution_id, last_event_id="0"):  # the log from its start, then live
            kind = event.type.removeprefix("node.").removeprefix("execution.")
            line = Text.assemble(
                (f"{event.data.get('at', '')}  ", "dim"),
                (f"#{event.data.get('seq', event.id or '')}".ljust(6)),
                (event.type.ljust(22), status_text(kind).style),
                str(event.data.get("nodeId", "")).ljust(16),
                _describe(event),
            )
            out.print(line)
            if event.type in FINAL_EVENTS:
                break
        execution = spane.execution(execution_id)
    raise typer.Exit(_exit_code(execution))


def _steer(ctx: typer.Context, execution_id: str, name: str) -> None:
    with client(ctx) as spane:
        accepted = getattr(spane, name)(execution_id)
    out.print(Text.assemble(f"execution {accepted.execution_id}: ", status_text(accepted.status)))


@handles_errors
def pause(ctx: typer.Context, execution_id: Annotated[str, typer.Argument(help="The execution id.")]) -> None:
    """Pause: nothing new starts; running nodes finish."""
    _steer(ctx, execution_id, "pause")


@handles_errors
def resume(ctx: typer.Context, execution_id: Annotated[str, typer.Argument(help="The execution id.")]) -> None:
    """Resume a paused execution."""
    _steer(ctx, execution_id, "resume")


@handles_errors
def cancel(ctx: typer.Context, execution_id: Annotated[str, typer.Argument(help="The execution id.")]) -> None:
    """Cancel: nothing new starts, timers are dropped."""
    _steer(ctx, execution_id, "cancel")


@handles_errors
def signal(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution id.")],
    name: Annotated[str, typer.Argument(help="The signal's name (a wait node's config.signal).")],
    data: Annotated[str, typer.Option("--data", "-d", help="Its data as JSON, or @file.json.")] = "null",
) -> None:
    """Send a signal: the wait nodes waiting for it complete, with the data as their output."""
    value = parse_json(data, "--data")
    with client(ctx) as spane:
        accepted = spane.signal(execution_id, name, value)
    out.print(Text.assemble(f"execution {accepted.execution_id}: signal {name} sent, ", status_text(accepted.status)))
