"""Redis Cluster: ``SPANE_REDIS_URL=redis+cluster://host:port`` (``rediss+cluster://`` with TLS) opens redis-py's
cluster client on the nodes it discovers from that one.

Every key of an execution carries its partition as a hash tag (``spane:{p}:...``) and every script and
transaction touches one slot, so the client routes each command by its keys and the code above does not know
which it talks to. Where a command would span slots (a read over every partition's stream), the caller asks
``is_cluster`` and splits it. SCRIPT LOAD reaches every primary (redis-py sends it to all of them), so a script
that one node lacked is loaded everywhere by the first NOSCRIPT.

redis-py's cluster client holds a pool per node, and a pool that is full raises ``MaxConnectionsError`` at once: a
worker running many nodes would fail commands (and leave tasks to the visibility timeout) where a single Redis's
``WaitingConnectionPool`` waits. So the client hands out permits, as many as a node's pool holds connections: each
command, pipeline or transaction takes one (it uses at most one connection on each node it reaches), so no pool
ever fills, and a caller that finds none free waits for one, up to ``redis_pool_timeout_s``; past that it gets the
transient ``StorageUnavailable`` that the services retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spane_core.errors import ConfigurationError, StorageUnavailable

# The URL schemes that name a cluster, and the plain scheme redis-py reads.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def plain_url(url: str) -> str | None:
    """``url`` with its cluster scheme replaced by the plain one; None when it does not name a cluster."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        return None
    if parts.path not in ("", "/", "/0"):
        raise ConfigurationError(f"a Redis Cluster has only database 0; SPANE_REDIS_URL names {parts.path!r}")
    return urlunsplit(parts._replace(scheme=scheme, path=""))


# What a cluster that is down, partly down, or not reachable at all raises (discovery: RedisClusterException).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, SlotNotCoveredError)


def _unavailable(error: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"Redis Cluster is unavailable: {error or type(error).__name__}")


T = TypeVar("T")

# Whether the running task holds a permit already (the tasks redis-py starts inside a call inherit it).
_holding: ContextVar[bool] = ContextVar("spane_cluster_permit", default=False)


class StoreRedisCluster(RedisCluster):
    """The cluster client: connection and timeout errors leave it as ``StorageUnavailable``, as ``StoreRedis``'s do,
    and a caller waits for a connection rather than fail when they are all in use (see the module)."""

    def __init__(self, *, max_connections: int = 100, pool_timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.pool_size = max_connections  # a node's pool: redis-py's default is 100
        self.pool_timeout = pool_timeout
        self._permits = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await self.with_permit(lambda: super(StoreRedisCluster, self).execute_command(*args, **kwargs))

    async def with_permit(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` holding a permit (waiting for one while none is free), its connection errors as
        ``StorageUnavailable``."""
        if self._initialize:
            await self._discover()
        if _holding.get():  # redis-py's own calls inside one that holds a permit (a pipeline's redirections)
            return await self._unavailable_as_store_error(call)
        permits = self._permits
        if permits.locked():
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await permits.acquire()
            except TimeoutError:
                raise StorageUnavailable(
                    f"no Redis connection was free for {self.pool_timeout} s ({self.pool_size} in use)"
                ) from None
        else:
            await permits.acquire()  # free: returns at once
        held = _holding.set(True)
        try:
            return await self._unavailable_as_store_error(call)
        finally:
            _holding.reset(held)
            permits.release()

    @staticmethod
    async def _unavailable_as_store_error(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except _UNAVAILABLE as e:
            raise _unavailable(e) from e

    async def _determine_slot(self, command: str, *args: Any) -> int:
        # redis-py asks a server (COMMAND GETKEYS, one more round trip each time) where the keys of a command with
        # "movable" keys are; SPANE's reads name their streams after STREAMS, all in one slot: read them here.
        if command in _STREAM_READS:
            keys = _stream_keys(args[3:] if command == "XREADGROUP" else args)  # XREADGROUP: past GROUP g c
            if keys:
                slots = {self.keyslot(key) for key in keys}
                if len(slots) == 1:
                    return slots.pop()
        slot: int = await super()._determine_slot(command, *args)  # several slots: redis-py's own refusal
        return slot

    async def _discover(self) -> None:
        # Before the first command: redis-py looks a command's keys up on a startup node first, and the discovery
        # that the first commands run at once start closes those nodes' connections under them.
        try:
            await self.initialize()
        except (RedisClusterException, *_UNAVAILABLE) as e:
            raise _unavailable(e) from e

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py, as it should be
        return _StoreClusterPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's own pipeline()


class _StoreClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = cast(StoreRedisCluster, self.cluster_client)  # only StoreRedisCluster.pipeline() makes one
        return await client.with_permit(
            lambda: super(_StoreClusterPipeline, self).execute(raise_on_error, allow_redirections)
        )


_STREAM_READS = ("XREADGROUP", "XREAD")


def _stream_keys(args: tuple[Any, ...]) -> list[Any]:
    """The stream names of XREAD(GROUP)'s arguments from its options on: the first half of what follows STREAMS."""
    for i, arg in enumerate(args):
        if (arg.decode() if isinstance(arg, bytes) else str(arg)).upper() == "STREAMS":
            rest = args[i + 1 :]
            return list(rest[: len(rest) // 2])
    return []


def open_cluster(url: str, max_connections: int, pool_timeout: float) -> Redis:
    """A cluster client on ``url`` (a plain ``redis://`` or ``rediss://`` URL of any node), typed as the ``Redis``
    the store is written against: it answers every command SPANE sends, routed by slot, and its callers wait up to
    ``pool_timeout`` seconds for one of the ``max_connections`` connections a node may have."""
    client = StoreRedisCluster.from_url(url, max_connections=max_connections, pool_timeout=pool_timeout)
    return cast(Redis, client)


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a cluster client (a command over keys of several partitions must then be split)."""
    return isinstance(redis, RedisCluster)
