"""What open SSE streams cost the API: N idle clients, then the same clients while executions run.

    uv run --frozen python -m bench.sse_clients --clients 500 --idle 30

A fresh SPANE (separate processes, as ``python -m bench`` runs them) gets a workflow whose execution waits on a
long delay. Half the clients follow that execution (``/api/executions/{id}/events``: the snapshot, then silence),
half follow every event of another workflow (``/api/events?workflowId=``). Measured: the API's RSS before and after
the clients connect, its CPU and Redis's connected clients while they idle (heartbeats included), then the CPU
while ``--executions`` executions of the watched workflow run and every ``/api/events`` client receives all of
their events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from bench import procs
from bench.spane_system import SpaneSystem

WATCHED = "sse-bench-watched"
WAITING = "sse-bench-waiting"


def _workflow(workflow_id: str, delay_ms: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "transform", "outputs": ["wait"]},
                                   {"id": "wait", "type": "delay", "config": {"ms": delay_ms}}]  # fmt: skip
    return {"id": workflow_id, "name": workflow_id, "nodes": nodes}


class Client:
    """One SSE stream over a raw socket (cheap enough for the load generator to hold hundreds)."""

    def __init__(self) -> None:
        self.events = 0
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def follow(self, port: int, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        try:
            while line := await reader.readline():
                if line.startswith((b": connected", b"event: execution.state")):
                    self.ready.set()
                elif line.startswith(b"event: "):
                    self.events += 1
        finally:
            writer.close()


def _rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def _run(system: SpaneSystem, clients: int, idle_s: float, executions: int) -> dict[str, Any]:
    api_pid = system.pids()["api"]
    r = redis.Redis.from_url(system.redis_url)
    out: dict[str, Any] = {"clients": clients}
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as http:
        for wf, delay in ((WAITING, 3_600_000), (WATCHED, 1)):
            (await http.post("/api/workflows", json=_workflow(wf, delay))).raise_for_status()
        waiting = (await http.post(f"/api/workflows/{WAITING}/execute", json={"input": {}})).json()["executionId"]
        await asyncio.sleep(2)
        out["rss_mb_before"] = _rss_mb(api_pid)
        out["redis_clients_before"] = int(r.info("clients")["connected_clients"])
        followers = [Client() for _ in range(clients)]
        for i, client in enumerate(followers):
            path = f"/api/executions/{waiting}/events" if i % 2 else f"/api/events?workflowId={WATCHED}"
            client.task = asyncio.create_task(client.follow(system.port, path))
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in followers)), 120)
        out["connect_all_s"] = round(time.monotonic() - t0, 2)
        await asyncio.sleep(2)
        out["rss_mb_connected"] = _rss_mb(api_pid)
        out["redis_clients_connected"] = int(r.info("clients")["connected_clients"])
        cpu = procs.CpuAccount(named={"api": api_pid}).start()
        await asyncio.sleep(idle_s)
        idle = cpu.stop()
        out["idle_s"] = idle_s
        out["api_cpu_pct_of_core_idle"] = idle["per_process_pct_of_core"]["api"]
        out["rss_mb_after_idle"] = _rss_mb(api_pid)
        cpu = procs.CpuAccount(named={"api": api_pid}).start()
        t0 = time.monotonic()
        ids = [(await http.post(f"/api/workflows/{WATCHED}/execute", json={"input": {"n": n}})).json()["executionId"]
               for n in range(executions)]  # fmt: skip
        expected = 0  # events of all the executions: how many one has depends on timing (a slow start is its own)
        for execution_id in ids:
            while True:
                history = (await http.get(f"/api/executions/{execution_id}/history")).json()["events"]
                if history and history[-1]["type"] == "execution.completed":
                    expected += len(history)
                    break
                await asyncio.sleep(0.05)
        watchers = followers[0::2]
        for _ in range(600):  # up to a minute for the last events to reach every watcher
            if all(c.events >= expected for c in watchers):
                break
            await asyncio.sleep(0.1)
        busy = cpu.stop()
        out["executions"] = executions
        out["events_per_watcher"] = expected
        out["watchers_with_every_event"] = sum(c.events == expected for c in watchers)
        out["watchers"] = len(watchers)
        out["events_seen_min_max"] = [min(c.events for c in watchers), max(c.events for c in watchers)]
        if out["watchers_with_every_event"] < len(watchers):
            out["api_log"] = procs.tail(system.logs / "api.log")
        out["active_s"] = round(time.monotonic() - t0, 2)
        out["api_cpu_pct_of_core_active"] = busy["per_process_pct_of_core"]["api"]
        out["rss_mb_after_active"] = _rss_mb(api_pid)
        for client in followers:
            assert client.task is not None
            client.task.cancel()
        await asyncio.gather(*(c.task for c in followers if c.task), return_exceptions=True)
    r.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the clients idle while CPU is measured")
    parser.add_argument("--executions", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spane-sse-bench-") as tmp:
        system = SpaneSystem(Path(tmp), workers=1)
        try:
            system.start_servers()
            system.start_services()
            result = asyncio.run(_run(system, args.clients, args.idle, args.executions))
        finally:
            with contextlib.suppress(Exception):
                system.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
