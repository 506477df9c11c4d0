"""The one way a service opens Redis: a connection pool that waits when it is full, sized from the settings.

redis-py's default pool raises ``MaxConnectionsError`` the moment its connections are all in use, and a worker
running hundreds of nodes at once reaches that easily; a task failing that way was left for the visibility
timeout to bring back, and its side effects ran twice. Here a caller waits for a connection instead: the pool
bounds how many connections a process opens, never whether its work gets done.

redis-py's own ``BlockingConnectionPool`` does that too, but takes a condition and a timeout context for every
command even when connections are free, which cost the benchmark's diamond ~5 %; this pool costs nothing until
it is full.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spane_core.errors import ConfigurationError, StorageUnavailable
from spane_core.settings import Settings
from spane_core.store.cluster import open_cluster, plain_url

# Each partition's reader holds a connection for the length of its blocking XREADGROUP; the rest is shared.
SHARED_CONNECTIONS = 16


class WaitingConnectionPool(ConnectionPool):
    """A ``ConnectionPool`` whose callers wait up to ``timeout`` seconds for a free connection when all
    ``max_connections`` are in use; past that, ``redis.exceptions.ConnectionError`` (a transient error)."""

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
                return connection
            except MaxConnectionsError:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise RedisConnectionError(
                        f"no Redis connection was free for {self.timeout} s ({self.max_connections} in use)"
                    ) from None
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append(waiter)
                try:
                    async with asyncio.timeout(remaining):
                        await waiter
                except TimeoutError:
                    pass
                finally:
                    if not waiter.done():
                        waiter.cancel()

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


def _unavailable(error: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"Redis is unavailable: {error or type(error).__name__}")


class StoreRedis(Redis):
    """The client every service uses: the driver's connection and timeout errors leave it as the core's
    ``StorageUnavailable`` (the cause chained), so nothing above the store knows which driver it talks to."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError) as e:
            raise _unavailable(e) from e

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _StorePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _StorePipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except (RedisConnectionError, RedisTimeoutError) as e:
            raise _unavailable(e) from e


def pool_size(settings: Settings) -> int:
    """Connections one service may open: the setting, and never fewer than its blocking readers need."""
    return max(settings.redis_max_connections, 2 * settings.partitions + SHARED_CONNECTIONS)


def open_redis(settings: Settings) -> Redis:
    """A client on ``settings.redis_url`` whose callers wait (up to ``redis_pool_timeout_s``) for a free
    connection rather than fail; a cluster client when the URL's scheme is ``redis+cluster`` (see ``cluster``)."""
    if not settings.redis_url:
        raise ConfigurationError(
            "SPANE_REDIS_URL is not set; set it to the Redis to use, e.g. redis://localhost:6379/0"
        )
    cluster = plain_url(settings.redis_url)
    if cluster is not None:
        return open_cluster(cluster, pool_size(settings), settings.redis_pool_timeout_s)
    pool = WaitingConnectionPool.from_url(
        settings.redis_url, max_connections=pool_size(settings), timeout=settings.redis_pool_timeout_s
    )
    return StoreRedis.from_pool(pool)  # the client owns the pool: closing it closes the connections


def as_text(value: object) -> str:
    """A key, member or stream id from a client that does not decode responses (SPANE's never do), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
