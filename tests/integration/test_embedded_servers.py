from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
import redis.asyncio

from spane.embedded import PostgresServer, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spane-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_redis_fixture_answers_ping(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.ping()
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_database_fixture_answers_select_1(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == database_url.rsplit("/", 1)[1]
    finally:
        await conn.close()


def _redis_get(url: str, key: str) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        value = client.get(key)
        assert value is None or isinstance(value, bytes)
        return value
    finally:
        client.close()


def test_redis_restart_keeps_data(scratch: Path) -> None:
    with RedisServer(scratch) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
    with RedisServer(scratch) as server:
        assert _redis_get(server.url, "k") == b"v"


def test_redis_replaces_a_leftover_server_on_the_same_dir(scratch: Path) -> None:
    # As after a killed `spane dev`: the first server is never stopped.
    leftover = RedisServer(scratch).start()
    client = redis.Redis.from_url(leftover.url)
    client.set("k", "v")
    client.close()
    with RedisServer(scratch) as server:
        assert _redis_get(server.url, "k") == b"v"
    leftover.stop()  # already ended by the second server: must not raise


async def _insert_then_read(url: str, write: bool) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        if write:
            await conn.execute("create table t (v text); insert into t values ('kept')")
        return [row["v"] for row in await conn.fetch("select v from t")]
    finally:
        await conn.close()


async def test_postgres_restart_keeps_data(scratch: Path) -> None:
    first = PostgresServer(scratch / "pg", fast=True)
    await asyncio.to_thread(first.start)
    try:
        assert await _insert_then_read(first.url, write=True) == ["kept"]
    finally:
        await asyncio.to_thread(first.stop)
    second = PostgresServer(scratch / "pg", fast=True)
    await asyncio.to_thread(second.start)
    try:
        assert await _insert_then_read(second.url, write=False) == ["kept"]
    finally:
        await asyncio.to_thread(second.stop)


async def test_postgres_replaces_a_leftover_server_on_the_same_dir(scratch: Path) -> None:
    leftover = PostgresServer(scratch / "pg", fast=True)
    await asyncio.to_thread(leftover.start)
    assert await _insert_then_read(leftover.url, write=True) == ["kept"]
    server = PostgresServer(scratch / "pg", fast=True)
    await asyncio.to_thread(server.start)
    try:
        assert await _insert_then_read(server.url, write=False) == ["kept"]
    finally:
        await asyncio.to_thread(server.stop)
    await asyncio.to_thread(leftover.stop)  # already ended by the second server: must not raise
