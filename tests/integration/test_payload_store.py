"""The payload store against a real Postgres: stored once, read back, usable before the projector ever migrated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from spane_core.claim_check import canonical_json, payload_id, reference, reference_id
from spane_core.errors import PayloadMissing, PayloadsUnavailable
from spane_core.readmodel import MIGRATIONS, migrate, schema_version
from spane_core.store.payloads import PayloadStore

from spane.embedded import free_port

pytestmark = pytest.mark.integration

LIMIT = 1_000
BIG = ["x" * 5_000]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    db = await asyncpg.create_pool(database_url, min_size=0, max_size=4)
    try:
        yield db
    finally:
        await db.close()


def store_on(db: asyncpg.Pool, cache_bytes: int = 1 << 20) -> PayloadStore:
    return PayloadStore(db, inline_max=LIMIT, cache_bytes=cache_bytes, prepare=migrate)


async def rows(db: asyncpg.Pool) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return await conn.fetch("SELECT id, body FROM payloads ORDER BY id")


async def test_the_first_payload_creates_the_schema_on_a_database_the_projector_never_saw(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await schema_version(conn) == 0
    ref = await store_on(pool).store(BIG)
    async with pool.acquire() as conn:
        assert await schema_version(conn) == len(MIGRATIONS)
    assert [(r["id"], bytes(r["body"])) for r in await rows(pool)] == [(reference_id(ref), canonical_json(BIG))]


async def test_a_value_is_stored_once_however_often_it_is_stored(pool: asyncpg.Pool) -> None:
    first, second = store_on(pool), store_on(pool)  # two processes
    refs = [await first.store(BIG), await second.store(list(BIG)), await first.store(BIG)]
    assert refs[0] == refs[1] == refs[2] == reference(payload_id(canonical_json(BIG)), len(canonical_json(BIG)))
    assert len(await rows(pool)) == 1


async def test_a_value_known_to_be_stored_is_not_written_again(pool: asyncpg.Pool) -> None:
    store = store_on(pool)
    ref = await store.store(BIG)
    await pool.close()  # any statement would fail from here on
    assert await store.store(BIG) == ref
    assert await store.resolve({"again": ref}) == {"again": BIG}  # and read from the cache


async def test_small_values_stay_inline_and_touch_no_database(pool: asyncpg.Pool) -> None:
    await pool.close()
    store = store_on(pool)
    assert await store.store({"n": 1}) == {"n": 1}
    assert await store.resolve_many([{"n": 1}, "text", None]) == [{"n": 1}, "text", None]


async def test_references_resolve_to_their_values_in_one_call(pool: asyncpg.Pool) -> None:
    values: list[Any] = [["a" * 2_000], ["b" * 2_000], ["c" * 2_000]]
    refs = [await store_on(pool).store(v) for v in values]
    reader = store_on(pool)  # a cold cache
    resolved = await reader.resolve_many([refs[0], {"x": refs[1], "y": [refs[2]]}, "plain"])
    assert resolved == [values[0], {"x": values[1], "y": [values[2]]}, "plain"]
    assert len(reader.cache) == 3


async def test_tasks_that_need_the_same_payload_at_once_all_get_it(pool: asyncpg.Pool) -> None:
    ref = await store_on(pool).store(BIG)
    reader = store_on(pool)
    assert await asyncio.gather(*(reader.resolve(ref) for _ in range(20))) == [BIG] * 20


async def test_a_reference_to_a_payload_that_is_not_stored_is_an_error(pool: asyncpg.Pool) -> None:
    lost = reference(payload_id(b'"never stored"'), 14)
    with pytest.raises(PayloadMissing, match=str(reference_id(lost))):
        await store_on(pool).resolve({"a": lost})


async def test_postgres_away_is_reported_as_unavailable() -> None:
    db = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0)
    try:
        store = store_on(db)
        with pytest.raises(PayloadsUnavailable):
            await store.store(BIG)
        with pytest.raises(PayloadsUnavailable):
            await store.resolve(reference(payload_id(b"1"), 1))
        assert not store.is_stored(payload_id(canonical_json(BIG)))
    finally:
        await db.close()


async def test_the_cache_stays_within_its_bytes(pool: asyncpg.Pool) -> None:
    store = store_on(pool, cache_bytes=20_000)
    for i in range(20):
        await store.store([str(i) * 4_000])
    assert store.cache.size <= 20_000
    assert len(await rows(pool)) == 20


async def stored_ago(db: asyncpg.Pool, pid: str, days: int) -> None:
    """Make ``pid`` look stored ``days`` ago."""
    async with db.acquire() as conn:
        await conn.execute("UPDATE payloads SET stored_at = now() - make_interval(days => $2) WHERE id = $1", pid, days)


async def stored_at_is_recent(db: asyncpg.Pool, pid: str) -> bool:
    async with db.acquire() as conn:
        return bool(
            await conn.fetchval("SELECT stored_at > now() - interval '1 hour' FROM payloads WHERE id = $1", pid)
        )


async def test_storing_a_payload_marks_it_stored_now_even_when_another_process_stored_it(pool: asyncpg.Pool) -> None:
    ref = await store_on(pool).store(BIG)
    pid = str(reference_id(ref))
    await stored_ago(pool, pid, 2)
    reader = store_on(pool)
    assert await reader.resolve(ref) == BIG  # its body is cached here now: it is touched by id, not sent again
    await stored_ago(pool, pid, 2)
    assert await reader.store(BIG) == ref
    assert await stored_at_is_recent(pool, pid)  # no collection takes it while its new reference is on its way


async def test_a_process_takes_a_payload_as_stored_only_for_a_while_after_storing_it(pool: asyncpg.Pool) -> None:
    store = store_on(pool)
    ref = await store.store(BIG)
    pid = str(reference_id(ref))
    await stored_ago(pool, pid, 2)
    await store.store(BIG)  # stored a moment ago by this very process: not asked again
    assert not await stored_at_is_recent(pool, pid)
    forgetful = PayloadStore(pool, inline_max=LIMIT, cache_bytes=1 << 20, prepare=migrate, known_for_s=0)
    await forgetful.store(BIG)
    await stored_ago(pool, pid, 2)
    await forgetful.store(BIG)  # past its while: stored (touched) again
    assert await stored_at_is_recent(pool, pid)


async def test_touching_says_which_payloads_are_not_stored(pool: asyncpg.Pool) -> None:
    ref = await store_on(pool).store(BIG)
    missing = payload_id(b'"never stored"')
    assert await store_on(pool).touch({str(reference_id(ref)), missing}) == {missing}
