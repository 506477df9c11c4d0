"""``python -m bench.projector``: how fast the projector folds commits into Postgres, without the rest of the system.

The logs of E executions of a workload are made with the pure core (``decide``/``evolve``, no worker), cut into
commits the way a worker commits them (a node's start and result in one commit), interleaved across executions as
they arrive under load, and written with ``write_commits`` in batches of B commits into a fresh Postgres (fsync
off, as in ``make bench``), then checks that every execution shows completed. It reports events/s and the CPU the
projector process and Postgres spent per 1,000 events: the figures to watch when changing the projector's hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil
from spane_core.commands import Command, Complete, Context, MarkStarted, Start
from spane_core.decide import decide
from spane_core.definition import Workflow
from spane_core.events import Envelope, Event
from spane_core.ids import ExecutionId, NodeId, WorkflowId, new_ulid
from spane_core.node_schemas import BUILTIN_NODE_TYPES
from spane_core.readmodel import migrate
from spane_core.state import ExecutionState, NodeStatus, evolve
from spane_core.validation import parse_definition
from spane_projector.writer import FoldCache, write_commits

from bench.procs import postmaster_pid
from bench.workloads import WORKLOADS, Workload
from spane.embedded import PostgresServer

Commit = list[Envelope]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (Postgres: the postmaster and its backends)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _workflow(workload: Workload) -> Workflow:
    return Workflow(parse_definition(workload.definition(), BUILTIN_NODE_TYPES), 1)


def execution_commits(workload: Workload, wf: Workflow, run: int) -> list[Commit]:
    """One execution's log, as the commits a system would make: the start, then a start+result per node."""
    execution_id = ExecutionId(new_ulid())
    state: ExecutionState | None = None
    now = 1_700_000_000_000 + run
    commits: list[Commit] = []

    def commit(commands: list[Command]) -> None:
        nonlocal state
        ctx = Context(now=now, lease=f"l{len(commits)}", jitter=0.0)
        events: list[Event] = []
        for command in commands:
            for event in decide(state, wf, command, ctx):
                state = evolve(state, event, now)
                events.append(event)
        assert state is not None
        base = state.seq - len(events)
        commits.append(
            [
                Envelope(execution_id=execution_id, workflow_id=WorkflowId(wf.definition.id), seq=base + n, at=now,
                         event=e)
                for n, e in enumerate(events, start=1)
            ]
        )  # fmt: skip

    commit([Start(execution_id=execution_id, input=workload.make_input(run))])
    while state is not None and (queued := [n for n, s in state.nodes.items() if s.status is NodeStatus.QUEUED]):
        for node_id in queued:
            node = state.node(node_id)
            lease = f"l{len(commits)}"
            started = MarkStarted(node_id=NodeId(node_id), queued_seq=node.queued_seq, lease=lease)
            commit([started, Complete(node_id=NodeId(node_id), lease=lease, output={"n": node_id})])
            now += 1
    return commits


def interleave(executions: list[list[Commit]], in_flight: int) -> list[Commit]:
    """Commits in arrival order with ``in_flight`` executions running at once, round robin."""
    out: list[Commit] = []
    waiting = list(reversed(executions))
    running: list[list[Commit]] = []
    while waiting or running:
        while waiting and len(running) < in_flight:
            running.append(list(reversed(waiting.pop())))
        for commits in list(running):
            out.append(commits.pop())
            if not commits:
                running.remove(commits)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="fanout", choices=list(WORKLOADS))
    parser.add_argument("-E", "--executions", type=int, default=300)
    parser.add_argument("-B", "--batch", type=int, default=1000, help="commits per transaction")
    parser.add_argument("-C", "--in-flight", type=int, default=50, help="executions interleaved")
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    wf = _workflow(workload)
    executions = [execution_commits(workload, wf, run) for run in range(args.executions)]
    commits = interleave(executions, args.in_flight)
    events = sum(len(c) for c in commits)
    with tempfile.TemporaryDirectory(prefix="spane-projbench-") as scratch:
        pg = PostgresServer(Path(scratch) / "pg", fast=True).start()
        try:
            db = await asyncpg.connect(pg.url)
            await migrate(db)
            postmaster = postmaster_pid(pg.data_dir)
            assert postmaster is not None
            folds = FoldCache()  # as the projector keeps one
            pg_before = tree_cpu_seconds(postmaster)
            usage_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            for i in range(0, len(commits), args.batch):
                batch = [e for commit in commits[i : i + args.batch] for e in commit]
                await write_commits(db, batch, folds)
            wall = time.perf_counter() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            pg_cpu = tree_cpu_seconds(postmaster) - pg_before
            own = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
            completed = await db.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'")
            await db.close()
        finally:
            pg.stop()
    print(
        f"{workload.name}: {args.executions} executions, {len(commits)} commits, {events} events,"
        f" batches of {args.batch} commits"
    )
    print(f"  {events / wall:,.0f} events/s over {wall:.2f} s wall")
    per_k = 1e6 / events  # seconds of CPU -> ms per 1,000 events
    print(f"  CPU per 1,000 events: projector {own * per_k:.1f} ms, postgres {pg_cpu * per_k:.1f} ms")
    print(f"  (machine: {os.cpu_count()} cores)")
    if completed != args.executions:  # the figures mean nothing if the fold went wrong
        raise SystemExit(f"the read model shows {completed} of {args.executions} executions completed")


if __name__ == "__main__":
    asyncio.run(main())
