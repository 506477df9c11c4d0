"""Waiting for an event with a timeout, without losing a cancellation.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives as the awaited event is set: the loop that
called it goes on as if nothing happened, and a service that is told to stop never does. ``asyncio.timeout`` has
no such race, so every loop of SPANE waits through this one function.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True when it is set."""
    if not event.is_set():
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()
        except TimeoutError:
            pass
    return event.is_set()
