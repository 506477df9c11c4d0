"""Servers for the integration tests, started once per session and only when a test asks for them.

Set SPANE_TEST_REDIS_URL / SPANE_TEST_DATABASE_URL to use servers that already run instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from spane.embedded import PostgresServer, RedisServer
from spane.embedded_cluster import RedisClusterServer

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # A private loop: asyncio.run() would unset the current loop, which pytest-asyncio's session loop may own.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """A scratch dir for the session's servers (not under pytest's 0700 basetemp: see PostgresServer)."""
    path = Path(tempfile.mkdtemp(prefix="spane-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# The server fixtures ask for servers_dir only when they start a server, so an env URL creates no dir.
@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of the session's Redis."""
    if url := os.environ.get("SPANE_TEST_REDIS_URL"):
        yield url
        return
    data_dir: Path = request.getfixturevalue("servers_dir") / "redis"
    with RedisServer(data_dir, persistent=False) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster(servers_dir: Path) -> Iterator[RedisClusterServer]:
    """A local Redis Cluster of three masters (no replicas) for the session, torn down at its end."""
    with RedisClusterServer(servers_dir / "redis-cluster", masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of the session's Postgres maintenance database (a superuser connection)."""
    if url := os.environ.get("SPANE_TEST_DATABASE_URL"):
        yield url
        return
    data_dir: Path = request.getfixturevalue("servers_dir") / "postgres"
    with PostgresServer(data_dir, fast=True) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's Postgres, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(admin(f"CREATE DATABASE {name}"))
    yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    # The server is throwaway: a database left behind (say, the server went away) harms no other test.
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        _run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
