"""The SPANE driver: submit executions over the HTTP API, learn of their completion from the log, measure.

- Submission: ``POST /api/workflows/{id}/execute`` with aiohttp (a few keep-alive connections), at most C
  executions in flight. aiohttp, not httpx: the load generator shares the two cores with the system under test, and
  with httpx it took almost four times the CPU per execution (half a core at 325 executions/s).
- Completion: one reader follows the partition's commit stream (``spane:{p}:events``, the stream the projector
  consumes) and takes each ``execution.completed`` envelope's ``at``: the moment of the commit. An execution not
  heard of for a while is looked up in its own log instead.
- Projector lag: from that ``at`` until the execution shows as completed in the Postgres read model that
  ``GET /api/executions/{id}`` reads. (The GET itself answers from the Redis snapshot while the read model is
  behind, read-your-writes, so polling the GET would show no lag at all; the read model is polled directly, all
  pending executions in one query every 10 ms.)
  ``BENCH_LAG_POLL_MS`` changes that period (to see what the polling itself costs).
- After the window (projector caught up): every execution is read back with GET and checked, and for the chain the
  per-hop latency is taken from the log (node.completed to the next node.completed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import httpx
import redis.asyncio as aioredis
from spane_core import codec
from spane_core.keys import all_partitions, for_execution

from bench.loop import Progress, closed_loop
from bench.model import Sample, WorkloadResult, summary
from bench.procs import CpuAccount, PeakRss, postmaster_pid, redis_pid
from bench.redis_stats import commandstats, delta, net_bytes, used_memory
from bench.spane_system import SpaneSystem
from bench.workloads import Workload

TERMINAL = (b"execution.completed", b"execution.failed", b"execution.cancelled")
EXECUTION_TIMEOUT_S = 120.0
LAG_POLL_S = float(os.environ.get("BENCH_LAG_POLL_MS", "10")) / 1000
HTTP_CONNECTIONS = 8


class SpaneDriver:
    def __init__(self, system: SpaneSystem, partitions: int = 1) -> None:
        self.system = system
        self.partitions = partitions

    def _cpu_named(self) -> dict[str, int | tuple[int, bool]]:
        """The processes whose CPU is accounted: the services, Redis, and Postgres with its backends."""
        assert self.system.postgres is not None
        named: dict[str, int | tuple[int, bool]] = dict(self.system.pids())
        named.update(self._redis_pids())
        if (pid := postmaster_pid(self.system.postgres.data_dir)) is not None:
            named["postgres"] = (pid, True)
        return named

    def _rss_pids(self) -> dict[str, int]:
        return {**self.system.pids(), **self._redis_pids()}

    def _redis_pids(self) -> dict[str, int]:
        """Redis, or a cluster's masters as redis-1, redis-2, ..."""
        servers = self.system.redis_servers
        pids = {}
        for i, server in enumerate(servers, 1):
            if (pid := redis_pid(server.data_dir)) is not None:
                pids["redis" if len(servers) == 1 else f"redis-{i}"] = pid
        return pids

    async def register(self, workloads: list[Workload]) -> None:
        async with httpx.AsyncClient(base_url=self.system.url, timeout=30.0) as client:
            for workload in workloads:
                response = await client.post("/api/workflows", json=workload.definition())
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"POST /api/workflows {workload.name}: {response.status_code} {response.text}")

    async def run(
        self,
        workload: Workload,
        executions: int,
        concurrency: int,
        *,
        label: str = "",
        warmup: int = 0,
        progress: Progress | None = None,
    ) -> WorkloadResult:
        result = WorkloadResult("spane", workload.name, executions, concurrency, workload.nodes,
                                workers=self.system.workers_wanted, label=label)  # fmt: skip
        # Few connections: a POST takes a millisecond or two, and httpcore checks every pooled connection on each
        # request (has_expired), so a connection per lane would make the load generator eat the CPU under test.
        pooled = min(concurrency, HTTP_CONNECTIONS)
        client = aiohttp.ClientSession(
            base_url=self.system.url,
            connector=aiohttp.TCPConnector(limit=pooled),
            timeout=aiohttp.ClientTimeout(total=60.0),
        )
        redis = self.system.async_redis()
        admin = self.system.admin_clients()
        db = await asyncpg.create_pool(self.system.database_url, min_size=1, max_size=2)
        watcher = _CompletionWatcher(redis, self.partitions, split=self.system.cluster)
        lag = _ProjectionWatcher(db)
        inputs: dict[str, Any] = {}

        async def one(run: int) -> Sample:
            value = workload.make_input(run)
            sample = Sample(run=run)
            sample.submitted = time.time()
            try:
                async with client.post(f"/api/workflows/{workload.workflow_id}/execute", json={"input": value}) as r:
                    status, body = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError) as e:
                sample.error = f"run {run}: POST execute: {e!r}"
                return sample
            if status != 202:
                sample.error = f"run {run}: POST execute answered {status}: {body[:200]!r}"
                return sample
            sample.key = execution_id = json.loads(body)["executionId"]
            inputs[execution_id] = value
            done = await watcher.wait(execution_id, EXECUTION_TIMEOUT_S)
            if done is None:
                sample.error = f"run {run}: {execution_id} did not finish in {EXECUTION_TIMEOUT_S:.0f} s"
                return sample
            at_ms, kind = done
            sample.done = at_ms / 1000
            if kind != b"execution.completed":
                sample.error = f"run {run}: {execution_id} ended with {kind.decode()}"
            lag.add(execution_id, at_ms)
            return sample

        following = asyncio.create_task(watcher.follow())
        tasks = [asyncio.create_task(lag.follow())]
        try:
            await watcher.started.wait()
            if warmup:
                await closed_loop(warmup, concurrency, one, first_run=10**6)
                await lag.drained(60)
                lag.reset()
                inputs.clear()
            watcher.own.clear()
            rss = PeakRss(self._rss_pids()).start()
            cpu = CpuAccount(self._cpu_named()).start()
            memory_before = used_memory(admin)
            before, bytes_before, pg_before = commandstats(admin), net_bytes(admin), await _pg_position(db)
            samples = await closed_loop(executions, concurrency, one, progress)
            caught_up = await lag.drained(120)
            after, bytes_after, pg_after = commandstats(admin), net_bytes(admin), await _pg_position(db)
            memory_after = used_memory(admin)
            result.cpu = cpu.stop()
            result.rss_mb = rss.stop()
            self.system.check_alive()

            result.set_latencies(samples)
            for s in samples:
                if s.error:
                    result.fail(s.error)
            result.lag_ms = summary(lag.lags_ms)
            if lag.error:
                result.fail(f"projector lag not measured: {lag.error}")
            elif not caught_up:
                result.fail(f"the read model did not show {len(lag.pending)} completed executions after 120 s")
            watcher.own["info"] += 2 * len(admin)  # the before-snapshot's INFO commandstats and INFO stats
            commands = {k: v - watcher.own.get(k, 0) for k, v in delta(before, after).items()}
            result.redis_commands = {k: v for k, v in sorted(commands.items(), key=lambda kv: -kv[1]) if v > 0}
            if result.completed:
                total = sum(result.redis_commands.values())
                result.redis_commands_per_node = round(total / (result.completed * workload.nodes), 2)
            result.notes.append(f"driver's own Redis commands excluded: {sum(watcher.own.values())}")
            if result.completed:
                result.redis_memory_kb_per_execution = round(
                    (memory_after - memory_before) / result.completed / 1024, 1
                )
                nodes = result.completed * workload.nodes
                written = bytes_after[0] - bytes_before[0]
                read = bytes_after[1] - bytes_before[1] - watcher.own_bytes  # less what the driver itself read
                result.redis_kb_per_node = {
                    "in": round(written / nodes / 1024, 2),
                    "out": round(read / nodes / 1024, 2),
                }
                xacts, wal = pg_after[0] - pg_before[0], pg_after[1] - pg_before[1]
                result.postgres = {
                    "write_transactions": xacts,
                    "write_transactions_per_execution": round(xacts / result.completed, 2),
                    "wal_kb_per_execution": round(wal / result.completed / 1024, 1),
                }

            await self._check_all(client, workload, inputs, result)
            if workload.shape == "chain":
                await self._chain_hops(redis, workload, [s.key for s in samples if s.key and not s.error], result)
            return result
        finally:
            watcher.stopping = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(following, timeout=5)
            tasks.append(following)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await client.close()
            await redis.aclose()
            for client in admin:
                client.close()
            await db.close()

    async def _check_all(
        self, client: aiohttp.ClientSession, workload: Workload, inputs: dict[str, Any], result: WorkloadResult
    ) -> None:
        """GET every execution (the read model has caught up by now) and check what every node saw."""
        gate = asyncio.Semaphore(8)

        async def check(execution_id: str, value: Any) -> None:
            async with gate, client.get(f"/api/executions/{execution_id}") as response:
                status, body = response.status, await response.read()
            if status != 200:
                result.fail(f"GET {execution_id}: {status} {body[:200]!r}")
                return
            problem = workload.check_spane(json.loads(body), value)
            if problem:
                result.fail(f"{execution_id}: {problem}")

        await asyncio.gather(*(check(e, v) for e, v in inputs.items()))

    async def _chain_hops(
        self, redis: aioredis.Redis, workload: Workload, execution_ids: list[str], result: WorkloadResult
    ) -> None:
        order = {node: i for i, node in enumerate(workload.branch_ids())}
        hops: list[float] = []
        means: list[float] = []
        for execution_id in execution_ids[:500]:
            keys = for_execution(execution_id, self.partitions)
            raw = await redis.lrange(keys.log(execution_id), 0, -1)
            done: dict[int, int] = {}
            for item in raw:
                envelope = codec.decode_envelope(item)
                if envelope.type == "node.completed":
                    done[order[envelope.event.node_id]] = envelope.at  # type: ignore[union-attr]
            if len(done) != len(order):
                continue
            stamps = [done[i] for i in range(len(order))]
            hops += [float(b - a) for a, b in itertools.pairwise(stamps)]
            means.append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
        result.hop_ms = summary(hops)
        result.hop_mean_ms = summary(means)


class _CompletionWatcher:
    """Follows the commit streams; resolves the wait of each execution when its terminal event is committed."""

    def __init__(self, redis: aioredis.Redis, partitions: int, *, split: bool = False) -> None:
        self.redis = redis
        self.streams = [p.events for p in all_partitions(partitions)]
        self.partitions = partitions
        self.split = split  # one XREAD per stream (a Redis Cluster: each partition's stream in its own slot)
        self.started = asyncio.Event()
        self.stopping = False
        self.own: Counter[str] = Counter()  # the driver's Redis commands, not the system's
        self.own_bytes = 0  # about what those commands read (the payloads)
        self._done: dict[str, tuple[int, bytes]] = {}
        self._waiting: dict[str, asyncio.Future[tuple[int, bytes]]] = {}

    async def follow(self) -> None:
        last: dict[str, Any] = {}
        for stream in self.streams:
            newest = await self.redis.xrevrange(stream, count=1)
            last[stream] = newest[0][0] if newest else b"0-0"
        self.started.set()
        groups = [{stream: last[stream]} for stream in self.streams] if self.split else [last]
        await asyncio.gather(*(self._follow(group) for group in groups))

    async def _follow(self, last: dict[str, Any]) -> None:
        # Stopped by the flag, not by cancelling: redis-py may swallow a cancel that lands in a blocking read.
        while not self.stopping:
            try:
                answer = await self.redis.xread(last, count=2000, block=200)
            except (OSError, aioredis.RedisError):  # a dropped connection: waits fall back to the logs meanwhile
                await asyncio.sleep(0.1)
                continue
            finally:
                self.own["xread"] += 1
            for stream, entries in answer or []:
                name = stream.decode() if isinstance(stream, bytes) else stream  # the key we asked with
                for entry_id, fields in entries:
                    last[name] = entry_id
                    batch = fields.get(b"b", b"")
                    self.own_bytes += len(batch) + 64
                    if any(marker in batch for marker in TERMINAL):
                        self._commit(batch)

    def _commit(self, batch: bytes) -> None:
        for envelope in codec.decode_envelopes(batch):
            kind = envelope.type.encode()
            if kind in TERMINAL:
                self._resolve(envelope.execution_id, (envelope.at, kind))

    def _resolve(self, execution_id: str, done: tuple[int, bytes]) -> None:
        future = self._waiting.pop(execution_id, None)
        if future is None:
            self._done[execution_id] = done  # it finished before its POST answered
        elif not future.done():
            future.set_result(done)

    async def wait(self, execution_id: str, limit_s: float) -> tuple[int, bytes] | None:
        if execution_id in self._done:
            return self._done.pop(execution_id)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiting[execution_id] = future
        deadline = time.monotonic() + limit_s
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout=10.0)
            except TimeoutError:
                found = await self._from_log(execution_id)  # in case the stream entry was missed
                if found is not None:
                    self._waiting.pop(execution_id, None)
                    return found
                if time.monotonic() > deadline:
                    self._waiting.pop(execution_id, None)
                    return None

    async def _from_log(self, execution_id: str) -> tuple[int, bytes] | None:
        raw = await self.redis.lindex(for_execution(execution_id, self.partitions).log(execution_id), -1)
        self.own["lindex"] += 1
        if raw is None:
            return None
        envelope = codec.decode_envelope(raw)
        kind = envelope.type.encode()
        return (envelope.at, kind) if kind in TERMINAL else None


class _ProjectionWatcher:
    """How long after its completion commit each execution shows as final in the read model (Postgres)."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db
        self.pending: dict[str, int] = {}
        self.lags_ms: list[float] = []
        self.error: str | None = None

    def add(self, execution_id: str, at_ms: int) -> None:
        self.pending[execution_id] = at_ms

    def reset(self) -> None:
        self.lags_ms = []

    async def follow(self) -> None:
        while True:
            if self.pending:
                ids = list(self.pending)
                # A row this query finds was committed before the query began: that bounds its visibility.
                asked_ms = time.time() * 1000
                try:
                    rows = await self.db.fetch(
                        "SELECT execution_id FROM executions"
                        " WHERE execution_id = ANY($1::text[]) AND status IN ('completed', 'failed', 'cancelled')",
                        ids,
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    self.error = f"cannot read the read model: {e!r}"  # reported; the run goes on without lag
                    self.pending.clear()
                    return
                for row in rows:
                    at_ms = self.pending.pop(row["execution_id"], None)
                    if at_ms is not None:
                        self.lags_ms.append(max(0.0, asked_ms - at_ms))
            await asyncio.sleep(LAG_POLL_S)

    async def drained(self, limit_s: float) -> bool:
        """Whether every pending execution showed in the read model within ``limit_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                while self.pending:  # noqa: ASYNC110 - polled: the pending set is filled by follow()
                    await asyncio.sleep(0.02)
        return not self.pending


async def _pg_position(db: asyncpg.Pool) -> tuple[int, int]:
    """The next transaction id and the WAL position: their deltas count write transactions and WAL bytes
    (read-only queries, such as the lag poller's, take no transaction id)."""
    row = await db.fetchrow(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal"
    )
    assert row is not None
    return int(row["xid"]), int(row["wal"])
