"""Retry backoff as data: how long to wait after a failed try."""

from __future__ import annotations

from spane_core.definition import Backoff


def backoff_ms(backoff: Backoff, attempt: int, jitter: float) -> int:
    """The wait after try number ``attempt`` (1-based) failed. ``jitter`` is a random fraction in [0, 1)."""
    wait = float(backoff.delay) if backoff.type == "fixed" else float(backoff.delay) * 2 ** max(0, attempt - 1)
    if backoff.max_delay is not None:
        wait = min(wait, float(backoff.max_delay))
    spread = 1.0 if backoff.jitter is True else float(backoff.jitter or 0.0)
    # Jitter takes up to ``spread`` of the wait away, so that retries of many executions do not align.
    return max(0, round(wait * (1.0 - spread * jitter)))
