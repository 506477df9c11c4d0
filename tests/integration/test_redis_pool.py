"""The services' Redis pool: callers wait for a free connection instead of failing when all are in use."""

from __future__ import annotations

import asyncio

import pytest
from spane_core.errors import StorageUnavailable
from spane_core.settings import Settings
from spane_core.store.connection import open_redis, pool_size
from spane_core.store.transient import is_transient

pytestmark = pytest.mark.integration


async def test_more_callers_than_connections_all_get_one_in_turn(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, redis_max_connections=4)
    redis = open_redis(settings)
    try:
        size = pool_size(settings)
        # Each call holds its connection for 50 ms (a blocking pop on an empty list): three times the pool's size.
        replies = await asyncio.gather(*(redis.blpop([f"empty-{i}"], timeout=0.05) for i in range(3 * size)))
        assert replies == [None] * (3 * size)
        assert len(redis.connection_pool._in_use_connections) == 0  # every connection came back
        assert len(redis.connection_pool._available_connections) == size  # and no more were opened
    finally:
        await redis.aclose()


async def test_a_caller_that_waits_past_the_timeout_gets_a_transient_connection_error(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, redis_max_connections=4, redis_pool_timeout_s=0.1)
    redis = open_redis(settings)
    try:
        holders = [asyncio.ensure_future(redis.blpop([f"held-{i}"], timeout=1)) for i in range(pool_size(settings))]
        await asyncio.sleep(0.05)  # every connection is taken
        with pytest.raises(StorageUnavailable, match="no Redis connection was free") as raised:
            await redis.ping()
        assert is_transient(raised.value)
        await asyncio.gather(*holders)
    finally:
        await redis.aclose()
