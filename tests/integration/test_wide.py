"""Wide transitions: one commit that queues 10,000 nodes, or arms 10,000 timers, goes through (Lua's ``unpack``
cannot take that many values at once: the commit script makes its calls in chunks)."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.ids import NodeId
from spane_core.state import ExecutionStatus, NodeStatus

from .worker_support import engine, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WIDTH = 10_000


def fan_out(width: int, branch: dict[str, Any]) -> list[dict[str, Any]]:
    branches = [f"n{i:05d}" for i in range(width)]
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "transform", "outputs": branches}]
    nodes += [{"id": b, **branch, "outputs": ["join"]} for b in branches]
    nodes.append({"id": "join", "type": "transform", "config": {"expression": "length(keys(@))"}})
    return nodes


@pytest.mark.parametrize(
    "branch",
    [{"type": "transform"}, {"type": "delay", "config": {"ms": 10}}],
    ids=["10k-tasks-in-one-commit", "10k-timers-in-one-commit"],
)
async def test_a_ten_thousand_wide_fan_out_completes(redis_url: str, branch: dict[str, Any]) -> None:
    async with engine(redis_url) as e:
        wf = await e.register("wide", fan_out(WIDTH, branch))
        (eid,) = await e.start(wf, {"n": 1})
        async with running(e):
            (state,) = await e.wait_finished([eid], within=300)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.output == WIDTH  # the join saw every branch
    assert {state.node(NodeId(f"n{i:05d}")).status for i in range(WIDTH)} == {NodeStatus.COMPLETED}
