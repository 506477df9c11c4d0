"""Executions in Redis: snapshots in hashes, logs in lists, effects in streams and a zset, committed by Lua.

Every commit of a batch goes through store/lua/commit.lua in one pipelined round trip; ``encode_commit`` turns a
``Commit`` into the script's KEYS and ARGV as documented at the top of the script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis

from spane_core import codec
from spane_core.events import Envelope
from spane_core.keys import STATS, WORKER_GROUP, PartitionKeys, for_execution
from spane_core.store.commit import Commit, Committed, Failed, Refused, Stored
from spane_core.store.connection import as_text
from spane_core.store.executions import ExecutionStore, WorkflowSource
from spane_core.store.scripts import LuaScript, run_pipelined
from spane_core.store.transient import refused_for_good


class RedisRepository:
    def __init__(self, redis: Redis, partitions: int = 1) -> None:
        self.redis = redis
        self.partitions = partitions
        self._script = LuaScript("commit")

    def keys(self, execution_id: str) -> PartitionKeys:
        return for_execution(execution_id, self.partitions)

    async def load_stored(self, execution_ids: Sequence[str]) -> list[Stored | None]:
        """Each snapshot, with the log after it when it lags (a large execution's): one pipelined HMGET, and a
        second round trip only for those that lag. The log is append-only, so the tail read after the snapshot
        folds onto it to a state at least as recent (a commit in between only makes the tail longer)."""
        if not execution_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for eid in execution_ids:
            pipe.hmget(self.keys(eid).snapshot(eid), "s", "sv", "v")
        snapshots = cast(list[list[bytes | None]], await pipe.execute())
        lagging = [
            (i, eid, int(sv)) for i, (eid, (s, sv, v)) in enumerate(zip(execution_ids, snapshots, strict=True))
            if s is not None and sv is not None and v is not None and int(sv) < int(v)
        ]  # fmt: skip
        tails: dict[int, list[bytes]] = {}
        if lagging:
            tails = dict(
                zip((i for i, _, _ in lagging), await self.tails([(e, sv) for _, e, sv in lagging]), strict=True)
            )
        return [None if s is None else Stored(s, tails.get(i, ())) for i, (s, _, _) in enumerate(snapshots)]

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]:
        raw = cast(list[bytes], await self.redis.lrange(self.keys(execution_id).log(execution_id), after_seq, -1))
        return [codec.decode_envelope(item) for item in raw]

    async def tails(self, since: Sequence[tuple[str, int]]) -> list[list[bytes]]:
        pipe = self.redis.pipeline(transaction=False)
        for eid, seq in since:
            pipe.lrange(self.keys(eid).log(eid), seq, -1)
        return cast(list[list[bytes]], await pipe.execute())

    async def commit(self, commits: Sequence[Commit]) -> list[Committed | Refused | Failed]:
        if not commits:
            return []
        calls = [encode_commit(c, self.partitions) for c in commits]
        results = await run_pipelined(self.redis, self._script, calls, errors_as_results=True)
        for r in results:
            if isinstance(r, Exception) and not refused_for_good(r):
                raise r  # passes (a failover, a full server): the caller waits and tries again
        return [Failed(str(r)) if isinstance(r, Exception) else _result(r) for r in results]

    async def count(self, counter: str, n: int = 1) -> None:
        await self.redis.hincrby(STATS, counter, n)

    async def due_timers(self, partition: int, now: int, limit: int) -> list[str]:
        members = await self.redis.zrangebyscore(PartitionKeys(partition).timers, "-inf", now, start=0, num=limit)
        return [as_text(m) for m in members]

    async def drop_timers(self, partition: int, members: Sequence[str]) -> None:
        if members:
            await self.redis.zrem(PartitionKeys(partition).timers, *members)


def _result(reply: list[object]) -> Committed | Refused:
    seq = int(cast(int, reply[1]))
    if int(cast(int, reply[0])) == 1:
        return Committed(seq)
    if len(reply) < 4:
        return Refused(seq)
    snapshot, tail = cast(bytes, reply[2]), cast(list[bytes], reply[3])
    return Refused(seq, stored=Stored(snapshot, tail)) if snapshot else Refused(seq, tail=tail)


def encode_commit(c: Commit, partitions: int) -> tuple[list[str], list[object]]:
    """The commit script's KEYS and ARGV for ``c``."""
    eid = c.execution_id
    keys = for_execution(eid, partitions).at_priority(c.priority)
    key_list = [keys.snapshot(eid), keys.log(eid), keys.events, keys.tasks, keys.timers]
    if c.state is None:
        args: list[object] = [0, 0, b"", "", 0, b"", WORKER_GROUP, 0, 0, 0]
        args += [len(c.dropped_timers), *c.dropped_timers, len(c.acks), *c.acks]
        return key_list, args
    timer_args: list[object] = []
    for timer in c.timers:
        timer_args += [timer.due, timer.member]
    args = [c.expected_seq, c.state.seq, c.snapshot, c.state.workflow_id, c.state.workflow_version]
    args += [b"\x90" if not c.encoded else _msgpack_array(c.encoded), WORKER_GROUP]
    args += [len(c.encoded), *c.encoded]
    args += [len(c.tasks), *(codec.encode(task) for task in c.tasks)]
    args += [len(timer_args), *timer_args]
    args += [len(c.dropped_timers), *c.dropped_timers]
    args += [len(c.acks), *c.acks]
    return key_list, args


def redis_execution_store(redis: Redis, workflows: WorkflowSource, partitions: int = 1) -> ExecutionStore:
    """The command handler over executions kept in Redis."""
    return ExecutionStore(RedisRepository(redis, partitions), workflows)


def _msgpack_array(items: Sequence[bytes]) -> bytes:
    """A msgpack array of already-encoded items, without decoding and re-encoding them."""
    n = len(items)
    if n < 16:
        header = bytes([0x90 | n])
    elif n < 65536:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(items)
