"""How the client commands of `spane` report the server's refusals."""

from __future__ import annotations

import pytest
import typer

from spane.client import ApiError
from spane.commands.common import handles_errors


def _refused(status: int, title: str, detail: str) -> None:
    @handles_errors
    def command() -> None:
        raise ApiError(status, title, detail, [])

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 1


def test_a_401_says_how_to_give_the_command_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    _refused(401, "Unauthorized", "a valid 'Authorization: Bearer <token>' header is required")
    first, hint = capsys.readouterr().err.splitlines()
    assert first == "spane: 401 Unauthorized: a valid 'Authorization: Bearer <token>' header is required"
    assert hint == "  the server needs its API token: set SPANE_API_TOKEN, or pass --token before the command"


def test_other_refusals_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    _refused(404, "Not Found", "workflow 'nope' not found")
    assert capsys.readouterr().err.splitlines() == ["spane: 404 Not Found: workflow 'nope' not found"]
