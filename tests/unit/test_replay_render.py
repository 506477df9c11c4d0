"""`spane replay` prints the log's values as they are: an error message or id that looks like terminal markup or an
emoji code is neither styled away nor fatal."""

from __future__ import annotations

from rich.console import Console

from spane.replay import render

HOSTILE = "bad [/x] tag [red]and :a: code"


def test_values_that_look_like_markup_or_emoji_codes_print_verbatim() -> None:
    data = {
        "executionId": "01EXEC:a:1",
        "workflowId": "wf[bold]",
        "workflowVersion": 1,
        "status": "failed",
        "seq": 4,
        "lastSeq": 4,
        "source": "redis",
        "timeline": [
            {
                "kind": "node",
                "nodeId": "a",
                "attempt": 1,
                "status": "failed",
                "start": "2026-12-01T00:00:00.000Z",
                "durationMs": 3,
                "error": {"type": "ValueError", "message": HOSTILE},
            },
        ],
        "disagreements": [f"node a: {HOSTILE}"],
    }
    console = Console(record=True, width=200, markup=False, emoji=False, highlight=False)
    render(data, console)
    text = console.export_text()
    assert "01EXEC:a:1 (wf[bold] v1): failed" in text
    assert f"ValueError: {HOSTILE}" in text
    assert f"  - node a: {HOSTILE}" in text
