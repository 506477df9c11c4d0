"""The load generator both systems share: W executions, at most C in flight, each lane submitting its next one as
soon as its previous one completed (a closed loop, so that latency is measured at a known load)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from bench.model import Sample

Progress = Callable[[int], None]


async def closed_loop(
    total: int,
    concurrency: int,
    one: Callable[[int], Awaitable[Sample]],
    progress: Progress | None = None,
    first_run: int = 0,
) -> list[Sample]:
    """Run ``one(run)`` for runs ``first_run .. first_run + total - 1`` with ``concurrency`` lanes."""
    runs = iter(range(first_run, first_run + total))
    samples: list[Sample] = []
    counter = itertools.count(1)

    async def lane() -> None:
        for run in runs:  # the shared iterator hands each run to exactly one lane
            sample = await one(run)
            samples.append(sample)
            if progress is not None:
                progress(next(counter))

    lanes = [asyncio.create_task(lane()) for _ in range(max(1, min(concurrency, total)))]
    try:
        await asyncio.gather(*lanes)
    finally:
        for task in lanes:
            task.cancel()
    return sorted(samples, key=lambda s: s.run)
