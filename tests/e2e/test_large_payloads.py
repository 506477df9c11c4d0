"""A large input through the real system: the API shows the real values everywhere, while Redis (snapshot, log,
task and commit streams) and the read models hold only references, and the value is stored once."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from spane_core.claim_check import canonical_json, payload_id, reference
from spane_core.keys import for_execution

from .conftest import System
from .support import execute, post_workflow, unique, wait_final

pytestmark = pytest.mark.e2e

BRANCHES = [f"p{i}" for i in range(8)]
# Bytes that the snapshot, and any one entry of the execution's log and streams, stay under (inline, the snapshot
# would hold the 100 KB value 20 times).
SNAPSHOT_MAX = 16_384
ENTRY_MAX = 4_096


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def stored_count(system: System) -> int:
    return int(query(system.database_url, "SELECT count(*) FROM payloads")[0][0])


def test_a_100_kb_input_through_a_join_is_stored_once_and_read_back_everywhere(
    api: httpx.Client, system: System
) -> None:
    wf = unique("large")
    post_workflow(api, {"id": wf, "name": "Large diamond", "nodes": [
        {"id": "start", "type": "transform", "outputs": BRANCHES},
        *({"id": b, "type": "transform", "outputs": ["join"]} for b in BRANCHES),
        {"id": "join", "type": "transform"},
    ]})  # fmt: skip
    value = {"run": uuid.uuid4().hex, "rows": [{"i": i, "text": "t" * 90} for i in range(1_000)]}
    assert len(canonical_json(value)) > 100_000
    before = stored_count(system)

    execution_id = execute(api, wf, value)
    body = wait_final(api, execution_id, timeout=60)
    assert body["status"] == "completed"
    assert body["input"] == value
    assert {n: v["output"] for n, v in body["nodes"].items()} == {
        "start": value,
        **dict.fromkeys(BRANCHES, value),
        "join": dict.fromkeys(BRANCHES, value),
    }
    assert body["output"] == dict.fromkeys(BRANCHES, value)
    events = api.get(f"/api/executions/{execution_id}/history").json()["events"]
    assert events[0]["type"] == "execution.started" and events[0]["input"] == value
    outputs = [e["output"] for e in events if e["type"] == "node.completed"]
    assert len(outputs) == 10 and all(o in (value, dict.fromkeys(BRANCHES, value)) for o in outputs)

    # Stored once, though ten nodes passed it on: an object keeps its shape and its large member is stored, and
    # the join's output holds the same references rather than a second payload.
    rows = canonical_json(value["rows"])
    travels = {"run": value["run"], "rows": reference(payload_id(rows), len(rows))}
    assert stored_count(system) == before + 1
    (row,) = query(system.database_url, "SELECT body FROM payloads WHERE id = $1", payload_id(rows))
    assert bytes(row["body"]) == rows
    (projected,) = query(
        system.database_url, "SELECT input, output FROM executions WHERE execution_id = $1", execution_id
    )
    assert json.loads(projected["input"]) == travels  # the read models hold references
    assert json.loads(projected["output"]) == dict.fromkeys(BRANCHES, travels)

    client = redis.Redis.from_url(system.redis_url)
    try:
        keys = for_execution(execution_id, 1)
        snapshot = client.hget(keys.snapshot(execution_id), "s")
        assert isinstance(snapshot, bytes) and len(snapshot) < SNAPSHOT_MAX
        log = client.lrange(keys.log(execution_id), 0, -1)
        assert isinstance(log, list) and len(log) >= 20 and max(len(entry) for entry in log) < ENTRY_MAX
        for stream in (keys.tasks, keys.events):
            entries = client.xrange(stream) or []
            assert isinstance(entries, list)
            assert all(len(v) < ENTRY_MAX for _id, fields in entries for v in (fields or {}).values())
    finally:
        client.close()
