"""``python -m bench.priority``: a high-priority execution's latency under a backlog of low-priority work.

Starts SPANE (its servers and services, as ``python -m bench`` does), registers a chain of 5 transform nodes, starts
a backlog of B executions at priority 1 (``execute-many``), then, while the backlog drains, P probe executions at
priority 10 and as many at priority 1 (the control: behind the backlog, as any FIFO queue would keep them),
interleaved every 50 ms. A probe's latency is its ``finishedAt - startedAt``. Without priorities both would wait
for the backlog; with them the priority-10 probes overtake it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.spane_system import SpaneSystem

CHAIN = {
    "id": "prio-chain",
    "name": "Priority chain",
    "nodes": [
        {
            "id": f"n{i}",
            "type": "transform",
            "config": {"set": {f"n{i}": True}},
            "outputs": [f"n{i + 1}"] if i < 4 else [],
        }
        for i in range(5)
    ],
}


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def _final(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    while True:
        response = await client.get(f"/api/executions/{execution_id}")
        if response.status_code == 200 and response.json()["status"] in ("completed", "failed", "cancelled"):
            body: dict[str, Any] = response.json()
            return body
        await asyncio.sleep(0.05)


async def measure(url: str, backlog: int, probes: int) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        assert (await client.post("/api/workflows", json=CHAIN)).status_code in (200, 201)
        started = time.monotonic()
        for first in range(0, backlog, 1000):
            inputs = [{"i": i} for i in range(first, min(backlog, first + 1000))]
            response = await client.post(
                "/api/workflows/prio-chain/execute-many", json={"inputs": inputs, "priority": 1}
            )
            assert response.status_code == 202, response.text
        print(
            f"backlog of {backlog} executions ({backlog * 5} node tasks) started in {time.monotonic() - started:.1f} s"
        )
        ids: dict[int, list[str]] = {10: [], 1: []}
        for _ in range(probes):
            for priority in (10, 1):
                response = await client.post("/api/workflows/prio-chain/execute", json={"priority": priority})
                ids[priority].append(response.json()["executionId"])
            await asyncio.sleep(0.05)
        latencies: dict[str, list[float]] = {}
        for priority, execution_ids in ids.items():
            bodies = await asyncio.gather(*(_final(client, eid) for eid in execution_ids))
            latencies[f"priority {priority}"] = [_ms(b["finishedAt"]) - _ms(b["startedAt"]) for b in bodies]
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.priority", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", "-B", type=int, default=4000, help="low-priority executions (default 4000)")
    parser.add_argument("--probes", "-P", type=int, default=20, help="probes per priority (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="SPANE worker processes (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spane-bench-prio-") as scratch:
        system = SpaneSystem(Path(scratch), workers=args.workers)
        try:
            system.start_servers()
            system.start_services()
            results = asyncio.run(measure(system.url, args.backlog, args.probes))
        finally:
            system.stop()
    for name, values in results.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"{name}: p50 {statistics.median(values):,.0f} ms, p95 {p95:,.0f} ms, max {values[-1]:,.0f} ms")


if __name__ == "__main__":
    main()
