"""A task whose workers keep going silent does not loop for ever: its try fails (WorkerLost) and the retry policy
takes over, ending in the dead-letter queue when the tries run out."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.events import NodeFailed
from spane_core.keys import WORKER_GROUP, PartitionKeys
from spane_core.sdk import ExecutorRegistry, NodeContext

from .worker_support import engine, running

pytestmark = pytest.mark.integration

POLICY = {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}}


async def _deliver_to_ghosts(e: Any, times: int) -> None:
    """Deliver the pending task to a consumer that then 'dies', ``times`` times over."""
    tasks = PartitionKeys(0).tasks
    await e.redis.xgroup_create(tasks, WORKER_GROUP, id="0", mkstream=True)
    reply = await e.redis.xreadgroup(WORKER_GROUP, "ghost-0", {tasks: ">"}, count=10)
    ids = [entry_id for _, entries in reply for entry_id, _ in entries]
    for n in range(1, times):
        await e.redis.xclaim(tasks, WORKER_GROUP, f"ghost-{n}", 0, ids)  # each claim is one more delivery


def recording(runs: list[int]) -> ExecutorRegistry:
    """A `work` node type that notes the try it runs."""

    async def work(ctx: NodeContext) -> Any:
        runs.append(ctx.attempt)
        return "done"

    executors = ExecutorRegistry()
    executors.register("work", work)
    return executors


@pytest.mark.parametrize(
    ("ghosts", "tries_run_here", "failures"),
    [
        # Three workers took the task and went silent: more than task_max_deliveries allows. The first try is
        # given up on (never run by this worker) and the retry runs.
        (3, [2], [(1, "WorkerLost", True)]),
        # Two silent workers: still within the limit, so the task is simply reclaimed and run.
        (2, [1], []),
    ],
    ids=["lost-too-often", "reclaimed"],
)
async def test_a_task_that_keeps_losing_its_workers_fails_its_try(
    redis_url: str, ghosts: int, tries_run_here: list[int], failures: list[tuple[int, str, bool]]
) -> None:
    runs: list[int] = []
    async with engine(redis_url, task_visibility_timeout_ms=200, task_max_deliveries=3) as e:
        wf = await e.register("lost", [{"id": "a", "type": "work", "retryPolicy": POLICY}])
        (eid,) = await e.start(wf)
        await _deliver_to_ghosts(e, times=ghosts)
        async with running(e, recording(runs)):
            (state,) = await e.wait_finished([eid])
        assert state.status == "completed"
        assert runs == tries_run_here
        failed = [x.event for x in await e.store.read_log(eid) if isinstance(x.event, NodeFailed)]
        assert [(f.attempt, f.error.type, f.will_retry) for f in failed] == failures
        assert await e.redis.xlen(PartitionKeys(0).tasks) == 0
