"""The store on a real Redis Cluster of three masters: scripts reach every master, one-slot transactions and
blocking reads work on any of them, and an unreachable cluster is ``StorageUnavailable``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio import Redis
from spane_core.errors import StorageUnavailable
from spane_core.keys import PartitionKeys
from spane_core.settings import Settings
from spane_core.store.cluster import is_cluster
from spane_core.store.connection import open_redis, pool_size
from spane_core.store.scripts import LuaScript, run_pipelined
from spane_core.store.streams import ConsumerGroup
from spane_core.store.transient import is_transient

from spane.embedded import free_port
from spane.embedded_cluster import RedisClusterServer

pytestmark = pytest.mark.integration

PARTITIONS = 16


@pytest.fixture
async def cluster(redis_cluster: RedisClusterServer) -> AsyncIterator[Redis]:
    client = open_redis(Settings(redis_url=redis_cluster.url, partitions=PARTITIONS))
    assert is_cluster(client)
    yield client
    await client.aclose()


def nodes(redis_cluster: RedisClusterServer) -> list[redis.Redis]:
    return [redis.Redis.from_url(url) for url in redis_cluster.node_urls]


def master_ports(redis_cluster: RedisClusterServer) -> dict[int, int]:
    """Partition -> the port of the master holding its slot."""
    client = redis.RedisCluster.from_url(redis_cluster.url.replace("redis+cluster", "redis"))
    try:
        out = {}
        for p in range(PARTITIONS):
            node = client.get_node_from_key(PartitionKeys(p).events)  # type: ignore[no-untyped-call]
            out[p] = int(node.port)
        return out
    finally:
        client.close()


async def test_a_script_missing_on_any_master_is_loaded_on_every_one_and_runs(
    cluster: Redis, redis_cluster: RedisClusterServer
) -> None:
    script = LuaScript("take")  # any script: on streams that do not exist, take.lua answers {}
    servers = nodes(redis_cluster)
    for server in servers:
        server.script_flush()
    args: list[object] = ["no-such-group", "c", 1, 1]
    calls: list[tuple[list[str], list[object]]] = [([PartitionKeys(p).tasks], args) for p in range(PARTITIONS)]
    assert await run_pipelined(cluster, script, calls) == [[]] * PARTITIONS
    assert all(server.script_exists(script.sha) == [True] for server in servers)
    # One master alone loses its scripts (a restart, a failover to a fresh replica): the next call loads it there.
    ports = master_ports(redis_cluster)
    assert len(set(ports.values())) == 3
    victim = servers[0]
    victim.script_flush()
    p = next(p for p, port in ports.items() if port == victim.connection_pool.connection_kwargs["port"])
    assert await script(cluster, [PartitionKeys(p).tasks], args) == []
    assert victim.script_exists(script.sha) == [True]
    for server in servers:
        server.close()


async def test_a_stopping_consumer_hands_back_its_entries_in_one_transaction_on_any_master(cluster: Redis) -> None:
    streams = [PartitionKeys(p).tasks for p in range(PARTITIONS)]
    group = ConsumerGroup(cluster, "hand-back-test", "leaving", streams)
    await group.ensure_groups()
    for stream in streams:
        await cluster.xadd(stream, {"t": stream})
    for stream in streams:
        taken = await group.read(stream, 10, 100)
        assert [fields[b"t"].decode() for _, fields in taken] == [stream]
        assert await group.hand_back(stream) == 1
        other = ConsumerGroup(cluster, "hand-back-test", "staying", [stream])
        again = await other.read(stream, 10, 100)
        assert [fields[b"t"].decode() for _, fields in again] == [stream]
        await other.ack_and_delete(stream, [entry_id for entry_id, _ in again])
    for stream in streams:
        await cluster.delete(stream)


async def test_an_unreachable_cluster_is_storage_unavailable() -> None:
    client = open_redis(Settings(redis_url=f"redis+cluster://127.0.0.1:{free_port()}", partitions=PARTITIONS))
    with pytest.raises(StorageUnavailable):
        await client.xlen(PartitionKeys(0).events)
    await client.aclose()


async def test_stream_reads_are_routed_without_asking_a_server_for_their_keys(
    cluster: Redis, redis_cluster: RedisClusterServer
) -> None:
    servers = nodes(redis_cluster)

    def getkeys_calls() -> int:
        stats = [server.info("commandstats").get("cmdstat_command|getkeys", {}) for server in servers]
        return sum(int(s.get("calls", 0)) for s in stats)

    before = getkeys_calls()
    for p in range(PARTITIONS):
        bands = [band.tasks for band in PartitionKeys(p).bands()]
        group = ConsumerGroup(cluster, "routing-test", "reader", bands)
        await group.ensure_groups()
        await cluster.xadd(bands[0], {"t": "1"})
        assert [len(entries) for _, entries in await group.read_any(bands, 10, 10)] == [1]
        assert await cluster.xread({f"{PartitionKeys(p).tag}:routing-test": "0-0"}, count=1) == []
        for stream in bands:
            await cluster.delete(stream)
    assert getkeys_calls() == before
    for server in servers:
        server.close()


async def test_more_callers_than_a_node_s_connections_all_get_one_in_turn(redis_cluster: RedisClusterServer) -> None:
    settings = Settings(redis_url=redis_cluster.url, partitions=1, redis_max_connections=4)
    client = open_redis(settings)
    try:
        size = pool_size(settings)
        # Discovered first: redis-py queues a transaction's commands through a loop of their own, which must find
        # the cluster's nodes known (as the services' only transaction, the hand-back, always does).
        await client.delete("{one-slot}:a", "{one-slot}:n")
        # Each call holds a connection of the same master for 50 ms (a blocking pop on an empty list of one slot),
        # three times as many at once as that master's pool holds; and a pipeline and a transaction among them.
        pops = [client.blpop([f"{{one-slot}}:empty-{i}"], timeout=0.05) for i in range(3 * size)]
        pipe, multi = client.pipeline(transaction=False), client.pipeline(transaction=True)
        pipe.set("{one-slot}:a", 1)
        pipe.get("{one-slot}:a")
        multi.incr("{one-slot}:n")
        multi.get("{one-slot}:n")
        replies = await asyncio.gather(*pops, pipe.execute(), multi.execute())
        assert replies == [None] * (3 * size) + [[True, b"1"], [1, b"1"]]
        node = client.get_node_from_key("{one-slot}:a")  # type: ignore[attr-defined]
        assert len(node._connections) <= size  # no more were opened
    finally:
        await client.aclose()


async def test_a_cluster_caller_that_waits_past_the_timeout_gets_a_transient_error(
    redis_cluster: RedisClusterServer,
) -> None:
    settings = Settings(redis_url=redis_cluster.url, partitions=1, redis_max_connections=4, redis_pool_timeout_s=0.1)
    client = open_redis(settings)
    try:
        assert await client.get("anything") is None  # the cluster discovered first: the holders start at once
        holders = [asyncio.ensure_future(client.blpop([f"held-{i}"], timeout=2)) for i in range(pool_size(settings))]
        await asyncio.sleep(0)  # each holder takes its permit as it starts, before it first waits
        assert client._permits.locked()  # type: ignore[attr-defined]  # every permit is taken
        with pytest.raises(StorageUnavailable, match="no Redis connection was free") as raised:
            await client.get("anything")
        assert is_transient(raised.value)
        await asyncio.gather(*holders)
        assert await client.get("anything") is None  # and once they are back, commands run again
    finally:
        await client.aclose()
