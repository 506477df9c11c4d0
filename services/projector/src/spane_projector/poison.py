"""Poison entries: commit-stream entries the projector cannot decode or fold, parked so projection goes on.

An entry whose batch keeps failing for a reason of its own (not Postgres or Redis being away) is tried alone; when
it still fails, it is copied to ``<stream>:poison`` with its error and acknowledged. ``spane projector poison``
lists the parked entries and re-drives them (adds them to their stream again), once a fixed version runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from spane_core import keys
from spane_core.store.connection import as_text

# What an entry itself may cause: it cannot be decoded, or folding it breaks a rule. Anything else (a server away,
# a deadlock, a timeout) is retried forever and never parks an entry.
ENTRY_ERRORS: tuple[type[BaseException], ...] = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    ValueError,
    KeyError,
    TypeError,
    AssertionError,
)


def poison_stream(stream: str) -> str:
    return f"{stream}:poison"


def poison_streams(partitions: int) -> list[str]:
    return [poison_stream(s) for s in [p.events for p in keys.all_partitions(partitions)] + [keys.WorkflowKeys.events]]


@dataclass(frozen=True, slots=True)
class Parked:
    id: str  # its id in the poison stream
    stream: str  # where it came from
    entry_id: str  # its id there
    error: str
    parked_at: int  # epoch ms
    body: bytes | None


async def park(redis: aioredis.Redis, stream: str, entry_id: str, body: bytes | None, error: BaseException) -> None:
    fields: dict[Any, Any] = {
        "stream": stream,
        "id": entry_id,
        "error": f"{type(error).__name__}: {error}"[:2000],
        "at": str(int(time.time() * 1000)),
    }
    if body is not None:
        fields["b"] = body
    await redis.xadd(poison_stream(stream), fields)


async def parked(redis: aioredis.Redis, partitions: int) -> list[Parked]:
    out = []
    for stream in poison_streams(partitions):
        entries: list[Any] = await redis.xrange(stream) or []
        for entry_id, fields in entries:
            f = {as_text(k): v for k, v in (fields or {}).items()}
            out.append(
                Parked(
                    id=as_text(entry_id), stream=as_text(f["stream"]), entry_id=as_text(f["id"]),
                    error=as_text(f["error"]), parked_at=int(as_text(f["at"])), body=_bytes(f.get("b")),
                )
            )  # fmt: skip
    return out


async def redrive(redis: aioredis.Redis, partitions: int, ids: set[str] | None = None) -> list[Parked]:
    """Add the parked entries named by ``ids`` (all when None) to their streams again and drop them from the poison
    streams; returns them."""
    done = []
    for entry in await parked(redis, partitions):
        if ids is not None and entry.id not in ids:
            continue
        pipe = redis.pipeline(transaction=False)
        if entry.body is not None:
            pipe.xadd(entry.stream, {"b": entry.body})
        pipe.xdel(poison_stream(entry.stream), entry.id)
        await pipe.execute()
        done.append(entry)
    return done


def _bytes(value: Any) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
