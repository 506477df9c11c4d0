"""The payload store: the large values of the claim check (``spane_core.claim_check``), kept in Postgres.

Payloads are rows ``(id, body)`` of the ``payloads`` table, ``body`` the canonical JSON bytes as they were hashed
(``bytea``: no jsonb parse on the way in or out). Bodies are immutable and content-addressed, and any process may
cache them. Each process keeps the most recently used bodies, bounded in bytes, so that a value passed along
unchanged is not fetched again.

With a history retention, the projector collects the payloads of pruned executions (``spane_projector.prune``). So
a process takes a payload as stored, and references it without writing it, only for ``KNOWN_FOR_S`` after it stored
it or touched it (``stored_at``); the pruner leaves alone any payload stored more recently than the retention (a
day at least). Storing one whose body this process holds touches it by id: the body does not travel again.

The table is created by the read models' migrations (``spane_core.readmodel``). A worker or an API may need it
before the projector ever ran, so the store runs the migrations itself (``prepare``, idempotent and advisory-locked)
before its first statement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from spane_core.claim_check import Offloaded, offload, references_in, substitute
from spane_core.errors import PayloadMissing, PayloadsUnavailable
from spane_core.lru import ByteLRU
from spane_core.readmodel import reads, writes

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger("spane.payloads")

# How many stored ids a process remembers (an id takes ~120 bytes), and for how long it takes them as stored.
KNOWN_IDS = 16_384
KNOWN_FOR_S = 600.0

Prepare = Callable[["PoolConnectionProxy[asyncpg.Record]"], Awaitable[object]]


class PayloadCache:
    """Payload bodies by id, least recently used first out, holding at most ``max_bytes`` of bodies."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bodies: ByteLRU[str, bytes] = ByteLRU(max_bytes)

    @property
    def size(self) -> int:
        return self._bodies.size

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, pid: str) -> bytes | None:
        return self._bodies.get(pid)

    def put(self, pid: str, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:
            return  # one huge value would push out everything else; fetching it again is cheaper than that
        if not self._bodies.touch(pid):
            self._bodies.put(pid, body, len(body))


class PayloadStore:
    def __init__(
        self,
        db: asyncpg.Pool,
        inline_max: int,
        cache_bytes: int,
        prepare: Prepare | None = None,
        *,
        known_for_s: float = KNOWN_FOR_S,
    ) -> None:
        self.db = db
        self.known_for_s = known_for_s
        self.inline_max = inline_max
        self.cache = PayloadCache(cache_bytes)
        self._prepare = prepare
        self._prepared = prepare is None
        self._preparing = asyncio.Lock()
        self._stored: OrderedDict[str, float] = OrderedDict()  # id -> when this process stored it (monotonic)
        # Fetches in flight, by id: readers that need the same payload at once share one query (single flight).
        self._fetching: dict[str, asyncio.Task[dict[str, bytes]]] = {}
        self._decode = msgspec.json.decode

    # -- writing ----------------------------------------------------------------------------------------------

    def offload(self, value: Any) -> Offloaded:
        """``value`` as it may travel, and the payloads that must be stored first: those not known to be stored."""
        out = offload(value, self.inline_max)
        if not out.payloads:
            return out
        return Offloaded(out.value, {pid: body for pid, body in out.payloads.items() if not self.is_stored(pid)})

    async def store(self, value: Any) -> Any:
        """Store what ``value`` needs stored, and return it as it may travel."""
        out = self.offload(value)
        await self.put_many(out.payloads)
        return out.value

    def is_stored(self, pid: str) -> bool:
        """Whether this process stored ``pid`` lately enough to reference it without storing it again."""
        at = self._stored.get(pid)
        return at is not None and time.monotonic() - at < self.known_for_s

    async def put_many(self, payloads: Mapping[str, bytes]) -> None:
        """Store ``payloads`` (by id): those whose bodies this process holds are touched by id, the others written;
        raises ``PayloadsUnavailable`` when Postgres is away."""
        if not payloads:
            return
        held = [pid for pid in payloads if self.cache.get(pid) is not None]
        found = await self._touch(held) if held else set()
        rest = [pid for pid in payloads if pid not in found]
        if rest:
            await self._run(writes.INSERT_PAYLOADS, rest, [payloads[pid] for pid in rest])
        for pid, body in payloads.items():
            self._remember(pid)
            self.cache.put(pid, body)

    async def touch(self, ids: Collection[str]) -> set[str]:
        """Mark ``ids`` as stored now (so that no collection takes them while a new reference to them is on its
        way); returns those that are not stored."""
        found = await self._touch(list(ids)) if ids else set()
        for pid in found:
            self._remember(pid)
        return set(ids) - found

    async def _touch(self, ids: list[str]) -> set[str]:
        return {str(row["id"]) for row in await self._run(writes.TOUCH_PAYLOADS, ids, fetch=True)}

    # -- reading ----------------------------------------------------------------------------------------------

    async def get_many(self, ids: Collection[str]) -> dict[str, bytes]:
        """The bodies of ``ids`` that are stored, in one query for those not cached or being fetched already."""
        wanted = set(ids)
        found: dict[str, bytes] = {}
        fetches: set[asyncio.Task[dict[str, bytes]]] = set()
        missing: list[str] = []
        for pid in wanted:
            body = self.cache.get(pid)
            if body is not None:
                found[pid] = body
            elif (fetching := self._fetching.get(pid)) is not None:
                fetches.add(fetching)
            else:
                missing.append(pid)
        if missing:
            fetches.add(self._start_fetch(missing))
        for fetch in fetches:
            # Shielded: a reader that is cancelled must not cancel the fetch that other readers wait for.
            fetched = await asyncio.shield(fetch)
            found.update({pid: body for pid, body in fetched.items() if pid in wanted})
        return found

    def _start_fetch(self, ids: list[str]) -> asyncio.Task[dict[str, bytes]]:
        fetch = asyncio.ensure_future(self._fetch(ids))
        for pid in ids:
            self._fetching[pid] = fetch

        def done(task: asyncio.Task[dict[str, bytes]]) -> None:
            for pid in ids:
                if self._fetching.get(pid) is task:
                    del self._fetching[pid]
            if not task.cancelled():
                task.exception()  # retrieved: a failure that no reader stayed to see is not an unhandled error

        fetch.add_done_callback(done)
        return fetch

    async def _fetch(self, ids: list[str]) -> dict[str, bytes]:
        rows = await self._run(reads.SELECT_PAYLOADS, ids, fetch=True)
        fetched = {row["id"]: row["body"] for row in rows}
        for pid, body in fetched.items():
            self.cache.put(pid, body)
        return fetched

    async def resolve(self, value: Any) -> Any:
        (resolved,) = await self.resolve_many([value])
        return resolved

    async def resolve_many(self, values: Sequence[Any]) -> list[Any]:
        """``values`` with every reference replaced by the value it names, fetched in one query for them all.

        Raises ``PayloadMissing`` for a reference to a payload that is not stored."""
        held = [references_in(v) for v in values]
        ids = set().union(*held)
        if not ids:
            return list(values)
        bodies = await self.get_many(ids)
        if lost := ids - bodies.keys():
            raise PayloadMissing(f"stored payload(s) not found: {', '.join(sorted(lost))}")
        return [substitute(v, bodies, self._decode) if refs else v for v, refs in zip(values, held, strict=True)]

    # -- Postgres ---------------------------------------------------------------------------------------------

    def _remember(self, pid: str) -> None:
        self._stored[pid] = time.monotonic()
        self._stored.move_to_end(pid)
        if len(self._stored) > KNOWN_IDS:
            self._stored.popitem(last=False)

    async def _run(self, sql: str, *args: object, fetch: bool = False) -> list[asyncpg.Record]:
        try:
            async with self.db.acquire() as conn:
                if not self._prepared:
                    await self._prepare_once(conn)
                if fetch:
                    return await conn.fetch(sql, *args)
                await conn.execute(sql, *args)
                return []
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise PayloadsUnavailable(f"the payload store (Postgres) is unavailable: {e}") from e

    async def _prepare_once(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        async with self._preparing:
            if not self._prepared and self._prepare is not None:
                await self._prepare(conn)
                self._prepared = True
