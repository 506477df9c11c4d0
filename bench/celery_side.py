"""The same workloads as Celery canvases (chain, group, chord) on the same Redis, with 2 prefork worker processes.

This module is also the Celery app that the workers import (``celery -A bench.celery_side worker``): keep its
import light. Broker and result backend are the benchmark's Redis, database ``BENCH_CELERY_REDIS_URL`` points at.

- diamond / fan-out: ``chain(noop.s(input), chord(group(noop.s() x N), noop.s()))``: the join receives the list of
  the N parents' results;
- chain: ``chain(noop.s(input), noop.s(), ...)``, ten tasks.

Completion is the final task's result being stored (its ``date_done``, microseconds, stamped by the worker); the
driver hears of it through the PUBLISH that Celery's Redis backend sends with every result.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from celery import Celery, chain, chord, group

QUEUE = "bench"
app = Celery("bench", broker=os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/1"))
app.conf.update(
    result_backend=app.conf.broker_url,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_expires=3600,
    worker_hijack_root_logger=False,
    # Celery's default (4); BENCH_CELERY_PREFETCH tries others (1 and 16 were no faster here).
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
)


@app.task(name="bench.noop")
def noop(value: Any) -> Any:
    """The no-op node: its output is its input (a join's input is the list of its parents' results)."""
    return value


# Everything below runs in the benchmark process only.


def canvas(shape: str, width: int, value: Any) -> Any:
    if shape == "chain":
        return chain(noop.s(value), *(noop.s() for _ in range(width - 1)))
    return chain(noop.s(value), chord(group(noop.s() for _ in range(width)), noop.s()))


def _meta_key(task_id: str) -> str:
    return f"celery-task-meta-{task_id}"


def _epoch(date_done: Any) -> float | None:
    if not date_done:
        return None
    moment = dt.datetime.fromisoformat(str(date_done))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


class CelerySide:
    """Celery workers on the given Redis database, and a driver for the workloads."""

    def __init__(self, redis_url: str, workdir: Path, processes: int = 2) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self.processes = processes
        self.log = workdir / "celery-worker.log"
        self._proc: Any = None
        self._submit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celery-submit")
        # The driver hears of results on its own connection. Celery's result consumer would SUBSCRIBE, in this
        # process, to the first task and to every chord header task it freezes, which is not Celery's load: off.
        # (`app.backend` is per thread, so the class is patched; the workers are other processes.)
        from celery.backends.redis import ResultConsumer

        ResultConsumer.consume_from = ResultConsumer.cancel_for = lambda self, task_id: None  # type: ignore

    # -- processes

    def start(self) -> None:
        from bench import procs

        app.conf.broker_url = app.conf.result_backend = self.redis_url
        args = [sys.executable, "-m", "celery", "-A", "bench.celery_side", "worker", "--pool", "prefork"]
        args += ["-c", str(self.processes), "-Q", QUEUE, "-n", f"bench-{os.getpid()}@%h", "-l", "WARNING"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = {"BENCH_CELERY_REDIS_URL": self.redis_url, "PYTHONPATH": str(procs.ROOT)}
        self._proc = procs.spawn(args, env, self.log, own_group=True)
        import redis as sync_redis

        client = sync_redis.Redis.from_url(self.redis_url)
        probe = str(uuid.uuid4())
        noop.apply_async(({"ping": True},), task_id=probe)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"the Celery worker exited:\n{procs.tail(self.log)}")
                if client.exists(_meta_key(probe)):
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise RuntimeError(f"the Celery worker did not answer in 60 s:\n{procs.tail(self.log)}")

    def pids(self) -> dict[str, int]:
        import psutil

        main = psutil.Process(self._proc.pid)
        out = {"celery-main": main.pid}
        for i, child in enumerate(sorted(main.children(), key=lambda p: p.pid), start=1):
            out[f"celery-pool-{i}"] = child.pid
        return out

    def stop(self) -> None:
        from bench import procs

        self._submit_pool.shutdown(wait=True)
        if self._proc is not None:
            procs.stop(self._proc, group=True)
            self._proc = None
        with contextlib.suppress(Exception):
            app.close()

    # -- workloads

    async def run(self, workload: Any, executions: int, concurrency: int, *, label: str = "",
                  warmup: int = 0, progress: Any = None, cpu_named: dict[str, Any] | None = None,
                  rss_pids: dict[str, int] | None = None) -> Any:  # fmt: skip
        """Run ``executions`` canvases of ``workload`` with ``concurrency`` in flight; a ``WorkloadResult``."""
        import redis as sync_redis
        import redis.asyncio as aioredis

        from bench import procs
        from bench.loop import closed_loop
        from bench.model import Sample, WorkloadResult
        from bench.redis_stats import commandstats, delta, net_bytes, used_memory

        result = WorkloadResult("celery", workload.name, executions, concurrency, workload.nodes,
                                workers=self.processes, label=label)  # fmt: skip
        client = aioredis.Redis.from_url(self.redis_url)
        admin = sync_redis.Redis.from_url(self.redis_url)
        pubsub = client.pubsub()
        waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        own: Counter[str] = Counter()  # the driver's own commands, taken off the server's count
        own_bytes = 0  # about what Redis sent the driver (result messages)
        await pubsub.subscribe("bench-celery-driver")
        own["subscribe"] += 1

        async def listen() -> None:
            nonlocal own_bytes
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message["type"] != "message":
                    continue
                channel = message["channel"].decode()
                future = waiting.get(channel.removeprefix("celery-task-meta-"))
                if future is not None and not future.done():
                    own_bytes += len(message["data"]) + len(channel) + 32
                    future.set_result(json.loads(message["data"]))

        listener = asyncio.create_task(listen())
        loop = asyncio.get_running_loop()
        inputs: dict[int, Any] = {}
        chain_ids: dict[int, list[str]] = {}

        async def one(run: int) -> Sample:
            value = workload.make_input(run)
            inputs[run] = value
            task_id = str(uuid.uuid4())
            sample = Sample(run=run, key=task_id)
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            waiting[task_id] = future
            await pubsub.subscribe(_meta_key(task_id))
            own["subscribe"] += 1
            sig = canvas(workload.shape, workload.width, value)
            sample.submitted = time.time()
            final = await loop.run_in_executor(self._submit_pool, lambda: sig.apply_async(task_id=task_id))
            if workload.shape == "chain":
                ids, node = [], final
                while node is not None:
                    ids.append(node.id)
                    node = node.parent
                chain_ids[run] = ids[::-1]
            try:
                meta = await asyncio.wait_for(future, timeout=300)
            except TimeoutError:
                raw = await client.get(_meta_key(task_id))
                own["get"] += 1
                meta = json.loads(raw) if raw else {"status": "TIMEOUT"}
            finally:
                waiting.pop(task_id, None)
                await pubsub.unsubscribe(_meta_key(task_id))
                own["unsubscribe"] += 1
            if meta.get("status") != "SUCCESS":
                sample.error = f"run {run}: status {meta.get('status')}: {str(meta.get('result'))[:200]}"
                return sample
            sample.done = _epoch(meta.get("date_done"))
            problem = workload.check_celery(meta.get("result"), value)
            if problem:
                sample.error = f"run {run}: {problem}"
            if sample.done is None:
                sample.error = f"run {run}: no date_done in the result"
            return sample

        try:
            if warmup:
                await closed_loop(warmup, concurrency, one, first_run=10**6)
                chain_ids.clear()
            rss = procs.PeakRss({**self.pids(), **(rss_pids or {})}).start()
            cpu = procs.CpuAccount({**self.pids(), **(cpu_named or {})}).start()
            own.clear()
            own_bytes = 0
            memory_before = used_memory(admin)
            before, bytes_before = commandstats(admin), net_bytes(admin)
            samples = await closed_loop(executions, concurrency, one, progress)
            after, bytes_after = commandstats(admin), net_bytes(admin)
            memory_after = used_memory(admin)
            result.cpu = cpu.stop()
            result.rss_mb = rss.stop()
            result.set_latencies(samples)
            for s in samples:
                if s.error:
                    result.fail(s.error)
            own["info"] += 2  # the before-snapshot's INFO commandstats and INFO stats
            commands = {k: v - own.get(k, 0) for k, v in delta(before, after).items() if v - own.get(k, 0) > 0}
            result.redis_commands = commands
            total = sum(commands.values())
            if result.completed:
                result.redis_memory_kb_per_execution = round(
                    (memory_after - memory_before) / result.completed / 1024, 1
                )
                nodes = result.completed * workload.nodes
                result.redis_commands_per_node = round(total / nodes, 2)
                written = bytes_after[0] - bytes_before[0]
                read = bytes_after[1] - bytes_before[1] - own_bytes  # less the results the driver was sent
                result.redis_kb_per_node = {
                    "in": round(written / nodes / 1024, 2),
                    "out": round(read / nodes / 1024, 2),
                }
            if workload.shape == "chain":
                await self._chain_hops(client, chain_ids, result)
            result.notes.append(f"driver's own Redis commands excluded: {sum(own.values())}")
            return result
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            await client.aclose()
            admin.close()

    async def _chain_hops(self, client: Any, chain_ids: dict[int, list[str]], result: Any) -> None:
        """Hops from each task's stored result to the next one's, from the results' date_done."""
        from bench.model import summary

        hops: list[float] = []
        means: list[float] = []
        for ids in list(chain_ids.values())[:500]:
            raws = await client.mget([_meta_key(i) for i in ids])
            times = [_epoch(json.loads(r).get("date_done")) if r else None for r in raws]
            if any(t is None for t in times) or len(times) < 2:
                continue
            stamps = [t for t in times if t is not None]
            steps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
            hops += steps
            means.append((stamps[-1] - stamps[0]) * 1000 / (len(stamps) - 1))
        result.hop_ms = summary(hops)
        result.hop_mean_ms = summary(means)
