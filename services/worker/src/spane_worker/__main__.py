"""``python -m spane_worker``: one worker from ``SPANE_*`` settings. SIGTERM or SIGINT stops taking tasks and
finishes those in flight."""

from __future__ import annotations

import asyncio
import signal

from spane_core.gc_tuning import tune_gc
from spane_core.observe import logs
from spane_core.settings import Settings

from spane_worker.service import run_worker


async def main() -> None:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)


if __name__ == "__main__":
    tune_gc()
    asyncio.run(main())
