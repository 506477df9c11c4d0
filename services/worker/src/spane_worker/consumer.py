"""The worker: take node tasks from the ``workers`` consumer group, run them, commit their results.

Per partition, a reader XREADGROUPs a batch sized by the free concurrency and hands it to the ``Runner``. Results
are committed in batches by one ``Committer``: each batch is whatever finished while the previous commit was in
flight, so a lone result is never delayed. A result and the XACK of its task are one atomic commit. Tasks idle
longer than the visibility timeout (their worker died) are taken over by the ``Reclaimer``; tasks still running
here are kept fresh by the ``Heartbeat`` so that no other worker steals them; ``Housekeeping`` forgets the
consumers of workers gone for good. ``Worker`` builds these around one ``ConsumerGroup`` and one ``HeldTasks``.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from spane_core.keys import WORKER_GROUP, PartitionKeys, all_bands, all_partitions
from spane_core.node_limits import LimitRules
from spane_core.observe.metrics import Metrics
from spane_core.sdk import ExecutorRegistry
from spane_core.settings import Settings
from spane_core.store.executions import ExecutionStore, WorkflowSource
from spane_core.store.limiter import Limiter
from spane_core.store.payloads import PayloadStore
from spane_core.store.streams import ConsumerGroup
from spane_core.store.workflows import WorkflowRegistry
from spane_core.subworkflows import Subworkflows
from spane_core.waiting import wait_event

from spane_worker.bands import PriorityReader
from spane_worker.committer import Committer
from spane_worker.cpu import CpuPool
from spane_worker.gate import Gate
from spane_worker.held import HeldTasks
from spane_worker.loop_lag import LoopLag
from spane_worker.reclaim import Reclaimer
from spane_worker.runner import Runner
from spane_worker.upkeep import Heartbeat, Housekeeping

log = logging.getLogger("spane.worker")


class Worker:
    def __init__(
        self,
        redis: Redis,
        store: ExecutionStore,
        workflows: WorkflowSource,
        executors: ExecutorRegistry,
        settings: Settings,
        *,
        block_ms: int = 1000,
        shutdown_grace_s: float = 30.0,
        payloads: PayloadStore | None = None,
        metrics: Metrics | None = None,
        traced: bool = False,
    ) -> None:
        self.partitions = all_partitions(settings.partitions)
        bands = all_bands(settings.partitions)  # every partition at every priority: one tasks stream each
        self.batch = settings.worker_batch
        self.block_ms = block_ms
        visibility_ms = settings.task_visibility_timeout_ms
        self.group = ConsumerGroup(redis, WORKER_GROUP, settings.consumer_name, [b.tasks for b in bands])
        self.held = HeldTasks(settings.worker_concurrency)
        self.committer = Committer(store, self.held.release, payloads)
        subworkflows = None
        if payloads is not None and isinstance(workflows, WorkflowRegistry):
            subworkflows = Subworkflows(redis, store, workflows, payloads, settings.max_depth)
        self.cpu = CpuPool(settings.worker_cpu_processes)
        limiter = Limiter(redis, settings.partitions, hold_ms=visibility_ms, poll_ms=settings.limit_poll_ms)
        rules = LimitRules(settings.circuit_breakers, settings.rate_limits, settings.concurrency_limits)
        self.gate = Gate(limiter, rules, workflows, store)
        self.held.on_release = self.gate.released
        self.limits_refresh_s = visibility_ms / 3000
        self.runner = Runner(
            self.group, self.held, self.committer, store, workflows, executors, payloads,
            announce_after_s=settings.worker_announce_after_ms / 1000, shutdown_grace_s=shutdown_grace_s,
            metrics=metrics, traced=traced, cpu=self.cpu, gate=self.gate,
            effects=None if subworkflows is None else subworkflows.carry_out,
        )  # fmt: skip
        self.lag = LoopLag(redis, settings.consumer_name, self.runner.on_loop, settings.worker_loop_lag_warn_ms)
        self.heartbeat = Heartbeat(self.group, self.held, bands, visibility_ms / 3000)
        self.reclaimer = Reclaimer(
            self.group, self.held, self.runner, store, bands,
            visibility_ms=visibility_ms, batch=self.batch, max_deliveries=settings.task_max_deliveries,
        )  # fmt: skip
        self.housekeeping = Housekeeping(self.group, bands)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish the tasks in flight (up to the shutdown grace) and commit them."""
        await self.group.ensure_groups()
        committer = asyncio.create_task(self.committer.run(), name="spane-worker-commit")
        heartbeat = asyncio.create_task(self.heartbeat.run(), name="spane-worker-heartbeat")
        lag = asyncio.create_task(self.lag.run(), name="spane-worker-loop-lag")
        limits = asyncio.create_task(self.gate.run(self.limits_refresh_s), name="spane-worker-limits")
        loops = [asyncio.create_task(self._read_loop(p, stop), name=f"spane-worker-read-{p.partition}")
                 for p in self.partitions]  # fmt: skip
        loops.append(asyncio.create_task(self.reclaimer.run(stop), name="spane-worker-reclaim"))
        loops.append(asyncio.create_task(self.housekeeping.run(stop), name="spane-worker-housekeeping"))
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.runner.drain()
            self.committer.close()
            await asyncio.gather(committer, return_exceptions=True)
            heartbeat.cancel()
            lag.cancel()
            limits.cancel()
            await asyncio.gather(heartbeat, lag, limits, return_exceptions=True)
            self.cpu.close()
            try:
                await self.gate.flush()  # free the slots and tell the breakers of the last tries
            except Exception:  # the slots expire on their own
                log.exception("could not update the shared limits while stopping")
            await self._hand_back()

    async def _hand_back(self) -> None:
        """Give back what this worker still holds (nodes cut off by the shutdown grace, tasks read but not
        started), so that another worker takes them now rather than after the visibility timeout."""
        for p in self.partitions:
            for stream in (band.tasks for band in p.bands()):
                try:
                    count = await self.group.hand_back(stream)
                except Exception:  # Redis away: they stay pending and are reclaimed after the visibility timeout
                    log.exception("could not hand back the tasks held on %s", stream)
                    continue
                if count:
                    log.info("handed back %d task(s) of %s", count, stream)

    async def _read_loop(self, p: PartitionKeys, stop: asyncio.Event) -> None:
        reader = PriorityReader(self.group, p)
        while not stop.is_set():
            try:
                if not await self.held.wait_for_room(stop):
                    return
                for band, entries in await reader.read(min(self.batch, self.held.free), self.block_ms):
                    await self.runner.accept(band, entries, reclaimed=False)
            except Exception:
                log.exception("worker read loop failed on %s", p.tasks)
                await wait_event(stop, 0.5)
