"""With tracing on, a start through the API or a webhook records the execution's trace context: under the caller's
span when the request carries a ``traceparent``, else a trace of its own; every task carries it on."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.codec import decode_task
from spane_core.events import ExecutionStarted
from spane_core.observe import context
from spane_core.observe.telemetry import Telemetry
from spane_core.store.redis_repository import RedisRepository

from .api_support import api_client, deps_of, make_settings

pytestmark = pytest.mark.integration

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_starts_record_the_callers_trace_context(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url)
    async with api_client(settings, telemetry=Telemetry(tracing=True)) as client:
        wf = {"id": "traced", "name": "traced", "nodes": [{"id": "a", "type": "transform"}],
              "triggers": [{"type": "webhook", "config": {"path": "traced"}}]}  # fmt: skip
        assert (await client.post("/api/workflows", json=wf)).status_code == 201
        under = (await client.post("/api/workflows/traced/execute", json={}, headers={"traceparent": CALLER})).json()
        own = (await client.post("/api/workflows/traced/execute", json={})).json()
        (hooked,) = (await client.post("/api/webhooks/traced", json={}, headers={"traceparent": CALLER})).json()[
            "executionIds"
        ]
        repository = RedisRepository(deps_of(client).redis)
        for eid, expected in [
            (under["executionId"], CALLER),
            (own["executionId"], context.start_context(own["executionId"])),
            (hooked, CALLER),
        ]:
            first = (await repository.read_log(eid))[0]
            assert isinstance(first.event, ExecutionStarted) and first.event.traceparent == expected
            assert first.traceparent == expected
        entries: list[Any] = await deps_of(client).redis.xrange("spane:{0}:tasks") or []
        tasks = [decode_task(fields[b"t"]) for _, fields in entries]
        assert {t.execution_id: t.traceparent for t in tasks} == {
            under["executionId"]: CALLER,
            own["executionId"]: context.start_context(own["executionId"]),
            hooked: CALLER,
        }
