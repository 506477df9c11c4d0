"""How `spane dev` and the single services report a service that stops with an error."""

from __future__ import annotations

import asyncio
import logging

import pytest
from spane_core.errors import PluginError
from spane_core.observe.telemetry import Telemetry
from spane_core.settings import Settings

from spane import runtime


async def _stops_with(error: Exception) -> list[logging.LogRecord]:
    async def service(settings: Settings, stop: asyncio.Event, telemetry: Telemetry) -> None:
        raise error

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    runtime.log.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(runtime.MAINS, "worker", service)
            with pytest.raises(type(error)):
                await runtime.run_services(Settings(), ["worker"])
    finally:
        runtime.log.removeHandler(handler)
    return records


async def test_a_refusal_that_says_it_all_is_logged_in_one_line() -> None:
    [record] = await _stops_with(PluginError("plugin module 'x' not found"))
    assert record.getMessage() == "service worker stopped: plugin module 'x' not found"
    assert record.exc_info is None


async def test_an_unexpected_error_is_logged_with_its_traceback() -> None:
    [record] = await _stops_with(ValueError("bug"))
    assert record.getMessage() == "service worker stopped with an error" and record.exc_info is not None
