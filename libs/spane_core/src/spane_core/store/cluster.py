"""Redis Cluster: ``SPANE_REDIS_URL=redis+cluster://host:port`` (``rediss+cluster://`` with TLS) opens redis-py's
cluster client on the nodes it discovers from that one.

Every key of an execution carries its partition as a hash tag (``spane:{p}:...``) and every script and
transaction touches one slot, so the client routes each command by its keys and the code above does not know
which it talks to. Where a command would span slots (a read over every partition's stream), the caller asks
``is_cluster`` and splits it. SCRIPT LOAD reaches every primary (redis-py sends it to all of them), so a script
that one node lacked is loaded everywhere by the first NOSCRIPT.

redis-py's cluster client holds a pool per node; a pool that is full raises at once (it cannot wait as
``WaitingConnectionPool`` does): it is sized from the same settings, per node, and the failure is the transient
``StorageUnavailable`` that the services retry.
"""

from __future__ import annotations

from typing import Any, cast
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


class StoreRedisCluster(RedisCluster):
    """The cluster client: connection and timeout errors leave it as ``StorageUnavailable``, as ``StoreRedis``'s do."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self._discover()
        try:
            return await super().execute_command(*args, **kwargs)
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
        client = self.cluster_client
        if isinstance(client, StoreRedisCluster) and client._initialize:
            await client._discover()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _UNAVAILABLE as e:
            raise _unavailable(e) from e


_STREAM_READS = ("XREADGROUP", "XREAD")


def _stream_keys(args: tuple[Any, ...]) -> list[Any]:
    """The stream names of XREAD(GROUP)'s arguments from its options on: the first half of what follows STREAMS."""
    for i, arg in enumerate(args):
        if (arg.decode() if isinstance(arg, bytes) else str(arg)).upper() == "STREAMS":
            rest = args[i + 1 :]
            return list(rest[: len(rest) // 2])
    return []


def open_cluster(url: str, max_connections: int) -> Redis:
    """A cluster client on ``url`` (a plain ``redis://`` or ``rediss://`` URL of any node), typed as the ``Redis``
    the store is written against: it answers every command SPANE sends, routed by slot."""
    client = StoreRedisCluster.from_url(url, max_connections=max_connections)
    return cast(Redis, client)


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a cluster client (a command over keys of several partitions must then be split)."""
    return isinstance(redis, RedisCluster)
