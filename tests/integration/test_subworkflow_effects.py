"""The effects of a sub-workflow node against real Redis: carried out twice (a worker died after doing it, before
acknowledging it), each still happens once; a child started after its parent was paused or cancelled follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from spane_core.commands import Cancel, Complete, MarkStarted, Pause, Start
from spane_core.effects_subflow import REPORT_TO_PARENT, START_CHILD
from spane_core.ids import ExecutionId, NodeId, new_execution_id
from spane_core.observe import context
from spane_core.readmodel import migrate
from spane_core.state import ExecutionStatus, NodeStatus
from spane_core.store.executions import Transition
from spane_core.store.payloads import PayloadStore
from spane_core.subworkflows import Subworkflows
from spane_core.task import Task

from .worker_support import Engine, engine

pytestmark = pytest.mark.integration
CALL, C = NodeId("call"), NodeId("c")


@pytest.fixture
async def e(redis_url: str) -> AsyncIterator[Engine]:
    async with engine(redis_url) as e:
        yield e


@pytest.fixture
async def subworkflows(e: Engine, database_url: str) -> AsyncIterator[Subworkflows]:
    db = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    try:
        yield Subworkflows(e.redis, e.store, e.workflows, PayloadStore(db, 51200, 1 << 20, prepare=migrate), 32)
    finally:
        await db.close()


async def parent_waiting(e: Engine) -> tuple[ExecutionId, Task]:
    """A parent whose node ``call`` waits for its child; and the task that starts the child."""
    await e.register("child-wf", [{"id": "c", "type": "transform"}])
    config = {"workflowId": "child-wf", "inputMapping": {"v": "x"}}
    parent_wf = await e.register("parent-wf", [{"id": "call", "type": "sub-workflow", "config": config}])
    parent = new_execution_id()
    outcome = await e.store.apply(Transition(parent, [Start(parent, {"x": 7})], workflow=parent_wf))
    assert outcome.state is not None
    node = outcome.state.node(CALL)
    assert node.status is NodeStatus.WAITING and node.child_execution_id is not None
    task = Task(
        execution_id=parent, workflow_id=parent_wf.id, workflow_version=1, node_id=CALL,
        node_type="", attempt=1, queued_seq=4, input={"x": 7}, kind=START_CHILD, target=node.child_execution_id,
    )  # fmt: skip
    return parent, task


async def test_a_child_started_twice_starts_once(e: Engine, subworkflows: Subworkflows) -> None:
    parent, task = await parent_waiting(e)
    await subworkflows.carry_out(task)
    await subworkflows.carry_out(task)
    child = ExecutionId(task.target)
    log = await e.store.read_log(child)
    assert [x.type for x in log].count("execution.started") == 1
    state = await e.store.load(child)
    assert state is not None
    assert (state.parent_execution_id, state.parent_node_id, state.depth, state.input) == (parent, CALL, 1, {"v": 7})


async def test_a_report_carried_out_twice_completes_the_parent_s_node_once(
    e: Engine, subworkflows: Subworkflows
) -> None:
    parent, task = await parent_waiting(e)
    await subworkflows.carry_out(task)
    child = ExecutionId(task.target)
    child_state = await e.store.load(child)
    assert child_state is not None
    # Run the child's one node by hand, as a worker would.
    started = await e.store.apply(Transition(child, [MarkStarted(C, child_state.node(C).queued_seq)]))
    assert started.state is not None
    await e.store.apply(Transition(child, [Complete(C, started.state.node(C).lease, output={"done": 1})]))
    report = Task(
        execution_id=child, workflow_id=task.workflow_id, workflow_version=1, node_id=task.node_id, node_type="",
        attempt=0, queued_seq=0, kind=REPORT_TO_PARENT, target=parent,
    )  # fmt: skip
    await subworkflows.carry_out(report)
    await subworkflows.carry_out(report)
    state = await e.store.load(parent)
    assert state is not None and state.status is ExecutionStatus.COMPLETED and state.output == {"done": 1}
    assert [x.type for x in await e.store.read_log(parent)].count("node.completed") == 1


@pytest.mark.parametrize(("command", "status"), [(Pause(), ExecutionStatus.PAUSED), (Cancel(), None)])
async def test_a_child_started_after_its_parent_paused_or_cancelled_follows_it(
    e: Engine, subworkflows: Subworkflows, command: Pause | Cancel, status: ExecutionStatus | None
) -> None:
    parent, task = await parent_waiting(e)
    await e.store.apply(Transition(parent, [command]))
    await subworkflows.carry_out(task)
    child = await e.store.load(ExecutionId(task.target))
    if status is None:  # the node no longer waits: the child is not started at all
        assert child is None
    else:
        assert child is not None and child.status is status


async def test_a_child_runs_at_its_parent_s_priority_in_its_parent_s_trace(
    e: Engine, subworkflows: Subworkflows
) -> None:
    await e.register("child-wf", [{"id": "c", "type": "transform"}])
    parent_wf = await e.register(
        "parent-wf", [{"id": "call", "type": "sub-workflow", "config": {"workflowId": "child-wf"}}]
    )
    parent = new_execution_id()
    traceparent = context.start_context(parent)
    start = Start(parent, {"x": 1}, priority=9, traceparent=traceparent)
    outcome = await e.store.apply(Transition(parent, [start], workflow=parent_wf))
    assert outcome.state is not None
    node = outcome.state.node(CALL)
    assert node.child_execution_id is not None
    await subworkflows.start_child(parent, CALL, node.child_execution_id, {"x": 1})
    child = await e.store.load(node.child_execution_id)
    assert child is not None and child.priority == 9
    parent_ctx, child_ctx = context.parse(traceparent), context.parse(child.traceparent)
    assert parent_ctx is not None and child_ctx is not None
    assert child_ctx.trace_id == parent_ctx.trace_id  # one trace for the parent and its child
    assert child_ctx.span_id == context.node_span_id(parent, CALL, node.attempt)  # under the parent node's span
