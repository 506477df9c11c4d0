"""What a worker logs when a node's try fails: one line for a failure that names itself, a traceback for a bug."""

from __future__ import annotations

import logging

import httpx
import pytest
from spane_core.commands import Fail
from spane_core.definition import NodeDef
from spane_core.errors import HttpStatusError
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.sdk import ExecutorRegistry, NodeContext
from spane_core.task import Task
from spane_worker.execute import execute


async def _failed_try(error: Exception, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    async def fails(ctx: NodeContext) -> None:
        raise error

    executors = ExecutorRegistry()
    executors.register("fails", fails)
    task = Task(
        execution_id=ExecutionId("e1"),
        workflow_id=WorkflowId("wf"),
        workflow_version=1,
        node_id=NodeId("n"),
        node_type="fails",
        attempt=2,
        queued_seq=1,
    )
    with caplog.at_level(logging.WARNING, logger="spane.worker"):
        ran = await execute(task, NodeDef(id=NodeId("n"), type="fails"), "lease", executors)
    assert isinstance(ran.command, Fail) and ran.command.retryable
    [record] = [r for r in caplog.records if r.name == "spane.worker"]
    return record


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("cannot resolve payments.example"), HttpStatusError("503 Service Unavailable")],
    ids=["network", "status"],
)
async def test_an_expected_failure_is_one_line_with_its_error(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    record = await _failed_try(error, caplog)
    assert record.getMessage() == f"node n of e1 failed (try 2): {type(error).__name__}: {error}"
    assert not record.exc_info  # no traceback


async def test_a_bug_in_an_executor_comes_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    record = await _failed_try(KeyError("userId"), caplog)
    assert record.getMessage() == "node n of e1 failed (try 2): KeyError: 'userId'"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
