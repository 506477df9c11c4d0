"""A steady load of executions over the HTTP API, each signalled once its wait node waits, and the checks that
follow each fault.

Each submission carries its own idempotency key and is retried with it until the API accepts it (the API may be
killed, or Redis away, meanwhile), so an accepted execution exists once however often it was sent."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

NODES = ("start", "slow-1", "slow-2", "pause", "shape", "approve", "join")
SIGNAL = "approval"


def workflow(workflow_id: str) -> dict[str, Any]:
    """start -> (two slow custom nodes, a durable delay, a transform, a wait for a signal) -> join."""
    middle = ["slow-1", "slow-2", "pause", "shape", "approve"]
    return {
        "id": workflow_id,
        "nodes": [
            {"id": "start", "type": "transform", "outputs": middle},
            {"id": "slow-1", "type": "fault-slow", "outputs": ["join"]},
            {"id": "slow-2", "type": "fault-slow", "outputs": ["join"]},
            {"id": "pause", "type": "delay", "config": {"ms": 200}, "outputs": ["join"]},
            {"id": "shape", "type": "transform", "config": {"expression": "n"}, "outputs": ["join"]},
            {"id": "approve", "type": "wait", "config": {"signal": SIGNAL}, "outputs": ["join"]},
            {"id": "join", "type": "transform"},
        ],
    }


@dataclass
class Load:
    """Submits executions of ``workflow_id`` every ``interval`` seconds on a thread of its own until stopped."""

    url: str
    workflow_id: str
    interval: float = 0.1
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> execution id
    unsignalled: list[str] = field(default_factory=list)  # accepted executions whose wait node has no signal yet
    refused: collections.Counter[int] = field(default_factory=collections.Counter)  # status -> answers (retried)
    unreachable: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, name=f"load-{self.workflow_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                self._submit(client, f"{self.workflow_id}-{n}", n)
                self._signal(client)
                self._stop.wait(self.interval)
            deadline = time.monotonic() + 90  # every accepted execution gets its signal, faults over or not
            while self.unsignalled and time.monotonic() < deadline:
                self._signal(client)
                time.sleep(0.1)

    def _signal(self, client: httpx.Client) -> None:
        """Send each waiting execution its signal, as a person would: again later when it is not waiting yet, or
        when the answer was lost (a 409 then says why: the node took an earlier one)."""
        for execution_id in list(self.unsignalled):
            try:
                response = client.post(f"/api/executions/{execution_id}/signals/{SIGNAL}", json={"ok": True})
                if response.status_code == 409:
                    nodes = client.get(f"/api/executions/{execution_id}").json().get("nodes", {})
                    if nodes.get("approve", {}).get("status") == "completed":
                        self.unsignalled.remove(execution_id)
                    continue
            except (httpx.HTTPError, ValueError):
                self.unreachable += 1
                return
            if response.status_code == 202:
                self.unsignalled.remove(execution_id)
            else:
                self.refused[response.status_code] += 1

    def _submit(self, client: httpx.Client, key: str, n: int) -> None:
        body = {"input": {"n": n}, "idempotencyKey": key}
        while not self._stop.is_set():
            try:
                response = client.post(f"/api/workflows/{self.workflow_id}/execute", json=body)
            except httpx.HTTPError:
                self.unreachable += 1
            else:
                if response.status_code == 202:
                    self.accepted[key] = response.json()["executionId"]
                    self.unsignalled.append(self.accepted[key])
                    return
                self.refused[response.status_code] += 1
            self._stop.wait(0.1)


@dataclass
class Verdict:
    accepted: int
    completed: int = 0
    lost: list[str] = field(default_factory=list)  # accepted, never completed
    duplicated: list[str] = field(default_factory=list)  # a node completed twice, or a key started twice
    mismatched: list[str] = field(default_factory=list)  # the read model differs from the log


async def _wait_projected(database_url: str, ids: list[str], within: float) -> dict[str, str]:
    deadline = time.monotonic() + within
    statuses: dict[str, str] = {}
    while True:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                rows = await conn.fetch("SELECT execution_id, status FROM executions WHERE execution_id = ANY($1)", ids)
            finally:
                await conn.close()
            statuses = {r["execution_id"]: r["status"] for r in rows}
        except (OSError, asyncpg.PostgresError):
            pass
        if len(statuses) == len(ids) and all(s == "completed" for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.25)


async def verify(url: str, database_url: str, load: Load, within: float = 120.0) -> Verdict:
    """Wait for every accepted execution to complete in the read model, then compare it with each log."""
    ids = sorted(set(load.accepted.values()))
    verdict = Verdict(accepted=len(load.accepted))
    if len(ids) != len(load.accepted):
        verdict.duplicated.append("two idempotency keys named one execution")
    statuses = await _wait_projected(database_url, ids, within)
    verdict.lost = [i for i in ids if statuses.get(i) != "completed"]
    conn = await asyncpg.connect(database_url)
    try:
        runs = await conn.fetch("SELECT execution_id, node_id, status FROM node_runs WHERE execution_id = ANY($1)", ids)
        outputs = {
            r["execution_id"]: r["output"]
            for r in await conn.fetch("SELECT execution_id, output FROM executions WHERE execution_id = ANY($1)", ids)
        }
        twice = (
            "SELECT idempotency_key, count(*) AS n FROM executions WHERE workflow_id = $1"
            " GROUP BY 1 HAVING count(*) > 1"
        )
        keys = await conn.fetch(twice, load.workflow_id)
    finally:
        await conn.close()
    verdict.duplicated += [f"key {r['idempotency_key']} started {r['n']} executions" for r in keys]
    by_execution: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for r in runs:
        by_execution[r["execution_id"]][r["node_id"]] = r["status"]
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        for execution_id in ids:
            if execution_id in verdict.lost:
                continue
            history = (await client.get(f"/api/executions/{execution_id}/history")).json()["events"]
            completed = collections.Counter(e.get("nodeId") for e in history if e["type"] == "node.completed")
            if any(count > 1 for count in completed.values()):
                verdict.duplicated.append(f"{execution_id}: {dict(completed)}")
            finals = [e for e in history if e["type"] == "execution.completed"]
            logged = {node: "completed" for node in completed}
            if set(completed) != set(NODES) or len(finals) != 1:
                verdict.mismatched.append(
                    f"{execution_id}: the log completes {sorted(completed)}, {len(finals)} end(s)"
                )
            elif by_execution[execution_id] != logged or _output(finals[0]) != _json(outputs[execution_id]):
                verdict.mismatched.append(f"{execution_id}: read model {by_execution[execution_id]} differs")
            else:
                verdict.completed += 1
    return verdict


def _output(event: dict[str, Any]) -> Any:
    return event.get("output")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
