"""``python -m bench``: SPANE against Celery on the same fresh Redis, in one run.

See "Benchmarks" in README.md, and bench/RESULTS.md for the figures of a full run.

Phases: start Redis + Postgres; start SPANE (api, N workers, projector, scheduler as separate processes); run each
workload (the chain also at concurrency 1; optionally the diamond with 1, 2 and 4 workers); stop SPANE; empty Redis;
start Celery (2 prefork processes) on the same Redis and run the same workloads; print the tables; write the JSON;
exit 1 when any execution is wrong (in smoke mode that is all it checks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import procs
from bench.graphs import GRAPHS, SMOKE_GRAPHS, run_graph
from bench.model import WorkloadResult
from bench.report import Run, print_run
from bench.workloads import WORKLOADS, Workload, select

SCALING_WORKERS = (1, 2, 4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    names = ", ".join([*WORKLOADS, *GRAPHS])
    parser.add_argument("--workloads", nargs="+", metavar="NAME", help=f"any of {names} (default all)")
    parser.add_argument("--executions", "-W", type=int, default=None, help="executions per workload (default 300)")
    parser.add_argument("--concurrency", "-C", type=int, default=None, help="executions in flight (default 50)")
    parser.add_argument("--low-load", type=int, default=None, help="chain executions at concurrency 1 (default 50)")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured executions before each (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="SPANE worker processes (default 2)")
    parser.add_argument("--celery-processes", type=int, default=2, help="Celery prefork processes (default 2)")
    parser.add_argument("--smoke", action="store_true", help="W=5, C=5: checks correctness only, asserts no speed")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery side")
    parser.add_argument("--no-spane", action="store_true", help="skip the SPANE side")
    parser.add_argument("--scaling", action="store_true", help="also run the diamond with 1, 2 and 4 workers")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, server data)")
    parser.add_argument(
        "--tracing", action="store_true", help="run SPANE with tracing on, exporting OTLP to a stand-in collector"
    )
    parser.add_argument(
        "--redis-cluster", action="store_true", help="run SPANE on a local Redis Cluster of three masters (SPANE only)"
    )
    parser.add_argument("--partitions", type=int, default=None, help="SPANE_PARTITIONS (default 1; 12 on a cluster)")
    args = parser.parse_args(argv)
    if args.redis_cluster and not args.no_celery:
        parser.error("--redis-cluster runs SPANE only: add --no-celery (Celery's result backend needs database 1)")
    small = args.smoke
    args.executions = args.executions or (5 if small else 300)
    args.concurrency = args.concurrency or (5 if small else 50)
    args.low_load = args.low_load if args.low_load is not None else (3 if small else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 10)
    return args


def machine_meta() -> dict[str, Any]:
    import psutil

    cpu_model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = "?"
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=procs.ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        commit += "+dirty" if dirty else ""
    import celery

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": cpu_model,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "celery": celery.__version__,
        "commit": commit,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        graphs = [n for n in args.workloads or GRAPHS if n in GRAPHS]  # one big execution each, SPANE only
        self.graphs = [g for n in graphs for g in (SMOKE_GRAPHS if args.smoke else GRAPHS)[n]]
        others = [n for n in args.workloads or () if n not in GRAPHS]
        self.workloads = select(others) if others or not args.workloads else []
        self.run = Run(config={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
        self.workdir = Path(tempfile.mkdtemp(prefix="spane-bench-"))
        self.system: Any = None
        self.celery: Any = None
        self.otlp: Any = None

    def progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True)  # fmt: skip

    async def _measure(self, runner: Any, workload: Workload, executions: int, concurrency: int,
                       label: str = "", **extra: Any) -> WorkloadResult:  # fmt: skip
        system = "spane" if runner is not self.celery else "celery"
        with self.progress() as bar:
            task = bar.add_task(f"{system} {workload.name} {label}".strip(), total=executions)
            warmup = 0 if workload.burst else self.args.warmup  # a burst hits a cold system, as in production
            result: WorkloadResult = await runner.run(
                workload, executions, concurrency, label=label, warmup=warmup,
                progress=lambda n: bar.update(task, completed=n), **extra,
            )  # fmt: skip
        status = "ok" if result.ok else f"{result.error_count} wrong"
        self.console.print(
            f"  {system:6} {workload.name:13} {label:10} {result.executions_per_s:8.1f} exec/s"
            f" {result.nodes_per_s:9.0f} node/s  e2e p50 {result.latency_ms.get('p50') or 0:.1f} ms  {status}"
        )
        return result

    def _chain(self) -> Workload | None:
        return WORKLOADS["chain"] if any(w.shape == "chain" for w in self.workloads) else None

    # -- SPANE

    def plan(self) -> list[tuple[Workload, int, int, str]]:
        """(workload, executions, concurrency, label) in the order they run: the chain at low load right after the
        chain, and the big-payload workloads last, as they leave the most data behind in Redis."""
        W, C = self.args.executions, self.args.concurrency
        steps: list[tuple[Workload, int, int, str]] = []
        for workload in sorted(self.workloads, key=lambda w: w.payload_bytes > 0):
            if workload.burst and not self.args.smoke:
                steps.append((workload, workload.burst, workload.burst, ""))
                continue
            steps.append((workload, W, C, ""))
            if workload.shape == "chain" and self.args.low_load > 0:
                steps.append((workload, self.args.low_load, 1, "low load"))
        return steps

    async def spane_phase(self) -> None:
        from bench.driver import SpaneDriver

        assert self.system is not None
        self.console.print(f"[bold]SPANE[/]: api, {self.args.workers} workers, projector, scheduler")
        self.system.start_services()
        driver = SpaneDriver(self.system, self.system.partitions)
        await driver.register(self.workloads)
        # The scaling runs right after the diamond (or before the big payloads), on a read model still small.
        scaled = not self.args.scaling
        for workload, executions, concurrency, label in self.plan():
            if not scaled and workload.payload_bytes > 0:
                await self.scaling(driver)
                scaled = True
            self.run.spane.append(await self._measure(driver, workload, executions, concurrency, label))
            if not scaled and workload.name == "diamond":
                await self.scaling(driver)
                scaled = True
        if not scaled:
            await self.scaling(driver)
        for graph in self.graphs:  # last: their big snapshots and logs stay in Redis
            result = await run_graph(self.system.url, self.system.async_redis(), graph, self.system.partitions)
            status = "ok" if result.ok else result.error
            self.console.print(
                f"  spane  {graph.name:13} register {result.register_ms:8.1f} ms  execute {result.execute_ms:8.0f} ms"
                f"  {result.ms_per_hop:7.2f} ms/hop  snapshot {result.snapshot_bytes / 1024:8.1f} KB  {status}"
            )
            self.run.graphs.append(result)
        self.system.stop_services()

    async def scaling(self, driver: Any) -> None:
        assert self.system is not None
        diamond = WORKLOADS["diamond"]
        await driver.register([diamond])
        for count in SCALING_WORKERS:
            self.system.set_workers(count)
            result = await self._measure(driver, diamond, self.args.executions, self.args.concurrency,
                                         f"{count} workers")  # fmt: skip
            self.run.scaling.append(result)
        self.system.set_workers(self.args.workers)

    # -- Celery

    async def celery_phase(self, redis_url: str, cpu_named: dict[str, Any]) -> None:
        from bench.celery_side import CelerySide

        db_url = redis_url.rsplit("/", 1)[0] + "/1"  # the same Redis server, its own database
        rss_pids = {"redis": cpu_named["redis"]} if "redis" in cpu_named else {}
        self.console.print(f"[bold]Celery[/]: 1 worker, prefork pool of {self.args.celery_processes}")
        self.celery = CelerySide(db_url, self.workdir, processes=self.args.celery_processes)
        try:
            self.celery.start()
            for workload, executions, concurrency, label in self.plan():
                if workload.spane_only:
                    continue
                result = await self._measure(self.celery, workload, executions, concurrency, label,
                                             cpu_named=cpu_named, rss_pids=rss_pids)  # fmt: skip
                self.run.celery.append(result)
        finally:
            self.celery.stop()

    # -- all

    async def main(self) -> None:
        from bench.spane_system import SpaneSystem

        self.run.meta = machine_meta()
        self.console.print(f"scratch dir {self.workdir}; starting Redis and Postgres")
        extra_env: dict[str, str] = {}
        if self.args.tracing:
            from bench.otlp_sink import OtlpSink

            self.otlp = OtlpSink().start()
            extra_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp.endpoint, "OTEL_TRACES_EXPORTER": "otlp"}
            self.console.print(f"tracing on: OTLP to a stand-in collector at {self.otlp.endpoint}")
        partitions = self.args.partitions or (12 if self.args.redis_cluster else 1)
        self.system = SpaneSystem(self.workdir, workers=self.args.workers, extra_env=extra_env,
                                  cluster=self.args.redis_cluster, partitions=partitions)  # fmt: skip
        self.system.start_servers()
        self.run.meta.update(await self.system.versions())
        named: dict[str, Any] = {}
        assert self.system.postgres is not None
        if (pid := procs.redis_pid(self.system.redis_servers[0].data_dir)) is not None:
            named["redis"] = pid  # the Celery side's (the first master's, which --redis-cluster refuses)
        if (pid := procs.postmaster_pid(self.system.postgres.data_dir)) is not None:
            named["postgres"] = (pid, True)
        if not self.args.no_spane:
            try:
                await self.spane_phase()
            except Exception as e:
                self.run.failures.append(f"SPANE phase failed: {e}")
                self.system.stop_services()
            self.run.meta["redis_after_spane"] = self.system.redis_memory()
            self.system.reset_redis()  # the Celery side starts on an empty Redis, as SPANE did
        if not self.args.no_celery:
            try:
                await self.celery_phase(self.system.redis_url, named)
            except Exception as e:
                self.run.failures.append(f"Celery phase failed: {e}")
        self.run.meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if self.otlp is not None:
            self.run.meta["otlp_exports"] = {"requests": self.otlp.requests, "bytes": self.otlp.bytes}
            self.console.print(f"OTLP exports received: {self.otlp.requests} requests, {self.otlp.bytes} bytes")

    def cleanup(self) -> None:
        if self.otlp is not None:
            self.otlp.stop()
        if self.celery is not None:
            with contextlib.suppress(Exception):
                self.celery.stop()
        if self.system is not None:
            self.system.stop()
        if self.args.keep:
            self.console.print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # a log or a pipe: keep the tables whole
    signal.signal(signal.SIGTERM, _terminate)  # clean up on SIGTERM as on Ctrl-C
    bench = Bench(args, console)
    started = time.monotonic()
    try:
        asyncio.run(bench.main())
    finally:
        bench.cleanup()
    print_run(bench.run, console)
    document = bench.run.to_json()
    document["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    console.print(f"took {document['meta']['duration_s']} s")
    return 0 if bench.run.correct else 1


if __name__ == "__main__":
    sys.exit(main())
