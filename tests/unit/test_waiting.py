"""A loop that waits for an event with a timeout stops when it is cancelled, even as the event is set."""

from __future__ import annotations

import asyncio

from spane_core.waiting import wait_event


async def test_a_cancel_that_arrives_as_the_event_is_set_stops_the_loop() -> None:
    event = asyncio.Event()

    async def forever() -> None:
        while True:
            await wait_event(event, 10)
            event.clear()

    task = asyncio.create_task(forever())
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is waiting for the event
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done and task.cancelled()


async def test_it_tells_whether_the_event_was_set_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set: no wait
