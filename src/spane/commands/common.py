"""What every client command shares: the client from the root options, one-line errors, JSON in and out."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from spane.client import ApiError, ClientError, SpaneClient

P = ParamSpec("P")
R = TypeVar("R")

TOKEN_HINT = "the server needs its API token: set SPANE_API_TOKEN, or pass --token before the command"

# Piped, a table may be as wide as its content (a terminal's width still limits it on a terminal).
PIPED_WIDTH = 1000


def console(stderr: bool = False) -> Console:
    """A console for the server's data (ids, names, error messages): no markup, no ":name:" emoji codes read in it.

    Piped into a file or another command, tables are not cut to 80 columns: only a terminal's width (or COLUMNS)
    limits them.
    """
    printer = Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
    if not printer.is_terminal and not os.environ.get("COLUMNS"):
        printer.width = PIPED_WIDTH
    return printer


out = console()
err = console(stderr=True)

STATUS_STYLES = {
    "completed": "green",
    "running": "cyan",
    "queued": "cyan",
    "waiting": "yellow",
    "paused": "yellow",
    "scheduled": "yellow",
    "failed": "red",
    "dead_lettered": "red",
    "cancelled": "magenta",
    "skipped": "dim",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def client(ctx: typer.Context) -> SpaneClient:
    url, token = ctx.find_root().obj or (None, None)
    return SpaneClient.from_env(url, token)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text(f"spane: {message}"))
    return typer.Exit(code)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A client error becomes one readable line on stderr (a 422 also lists its problems) and exit status 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiError as e:
            err.print(Text(f"spane: {e}"))
            for problem in e.problems:
                err.print(Text(f"  {problem.path or '(definition)'}: {problem.message}"))
            if e.status == 401:  # the command sends the header itself: say how to give it the token
                err.print(Text(f"  {TOKEN_HINT}"))
            raise typer.Exit(1) from None
        except ClientError as e:
            raise fail(str(e)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return run


def parse_json(text: str, what: str) -> Any:
    """JSON given inline, or ``@path`` to read it from a file."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise fail(f"cannot read {what} from {text[1:]}: {e.strerror}", 2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(f"{what} is not valid JSON: {e}", 2) from None


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value), sort_keys=False)
