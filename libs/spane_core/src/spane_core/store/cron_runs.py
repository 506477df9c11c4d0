"""The last tick each schedule fired, in Redis (``WorkflowKeys.cron_runs``): what the schedulers share.

A schedule seen for the first time is armed at that moment (recorded with no execution), so that registering a
workflow never fires a tick from before it existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from spane_core.ids import ExecutionId
from spane_core.keys import WorkflowKeys as K
from spane_core.store.connection import as_text
from spane_core.store.scripts import LuaScript

_NONE = "-"


@dataclass(frozen=True, slots=True)
class LastRun:
    tick: int  # epoch ms: the tick fired, or when the schedule was armed
    execution_id: ExecutionId | None  # None: armed, nothing fired yet


class CronRuns:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.key = K.cron_runs
        self._mark = LuaScript("cron_mark")

    async def last_runs(self, fields: Sequence[str]) -> list[LastRun | None]:
        if not fields:
            return []
        values: list[Any] = await self.redis.hmget(K.cron_runs, list(fields))
        return [None if v is None else _parse(as_text(v)) for v in values]

    async def arm(self, field: str, now: int) -> None:
        await self.redis.hsetnx(K.cron_runs, field, f"{now} {_NONE}")

    async def record(self, field: str, tick: int, execution_id: ExecutionId) -> None:
        await self._mark(self.redis, [K.cron_runs], [field, tick, f"{tick} {execution_id}"])

    async def forget(self, fields: Sequence[str]) -> None:
        if fields:
            await self.redis.hdel(K.cron_runs, *fields)


def _parse(value: str) -> LastRun:
    tick, _, execution_id = value.partition(" ")
    return LastRun(int(tick), None if execution_id in ("", _NONE) else ExecutionId(execution_id))
