"""The execution options' routes: set an execution's timeout, re-run it, start many at once, and pause, resume or
cancel many. Each decodes, calls a core use case and answers; the rules are the core's."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from spane_core.bulk import MAX_BULK, command_many, start_many
from spane_core.errors import FieldError, InvalidInput, NotFound, StateConflict
from spane_core.execution_options import positive_ms, read_options
from spane_core.fields import is_int, json_type
from spane_core.ids import ExecutionId, WorkflowId
from spane_core.rerun import KEEP_INPUT, rerun_execution
from spane_core.state import ExecutionStatus
from spane_core.store.executions import now_ms
from spane_core.usecases import resolve_workflow, set_execution_timeout

from spane_api import readmodel
from spane_api.deps import Deps
from spane_api.problems import problem_responses
from spane_api.schemas import (
    BulkAccepted,
    BulkCommandRequest,
    CommandAccepted,
    ExecuteManyRequest,
    ExecutionsStarted,
    RerunAccepted,
    RerunRequest,
    SkippedExecution,
    TimeoutRequest,
)

# A bulk command selected by workflow and status acts on at most this many executions per call.
MAX_SELECTED = 10_000


@post(
    "/{execution_id:str}/timeout",
    status_code=HTTP_202_ACCEPTED,
    summary="Set or move the execution's deadline to `timeoutMs` from now",
    responses=problem_responses(400, 404, 409, 422),
)
async def set_timeout(execution_id: FromPath[str], deps: Deps, data: JSONBody[TimeoutRequest]) -> CommandAccepted:
    errors: list[FieldError] = []
    timeout_ms = positive_ms(data.timeout_ms, "timeoutMs", errors)
    if errors:
        raise InvalidInput("invalid timeout", errors)
    try:
        state = await set_execution_timeout(deps.executions, ExecutionId(execution_id), timeout_ms)
    except NotFound:
        found = await readmodel.execution(deps.db, execution_id)
        if found is None:
            raise
        raise StateConflict(f"cannot set the timeout of an execution that is {found[0].status}") from None
    return CommandAccepted(execution_id=state.execution_id, status=state.status)


@post(
    "/{execution_id:str}/rerun",
    status_code=HTTP_202_ACCEPTED,
    summary="Run an execution again, optionally from one of its nodes",
    description="A new execution linked by `rerunOf`. `input` and `version` default to the earlier execution's. "
    "With `fromNode`, the nodes that are not downstream of it keep their recorded outputs (completed, marked "
    "`reusedFrom` in the log) and only `fromNode` and what follows run again.",
    responses=problem_responses(400, 404, 410, 422),
)
async def rerun(execution_id: FromPath[str], deps: Deps, data: JSONBody[RerunRequest | None] = None) -> RerunAccepted:
    request = data or RerunRequest()
    errors: list[FieldError] = []
    if request.version is not None and (not is_int(request.version) or request.version < 1):
        errors.append(FieldError("version", f"version must be a positive integer, got {json_type(request.version)}"))
    if request.from_node is not None and not isinstance(request.from_node, str):
        errors.append(
            FieldError("fromNode", f"fromNode must be a node id (a string), got {json_type(request.from_node)}")
        )
    if errors:
        raise InvalidInput("invalid re-run", errors)
    given = (request.priority, request.timeout_ms, request.run_at)
    options = None if given == (None, None, None) else read_options(*given, now_ms())
    started = await rerun_execution(
        deps.redis, deps.workflows, deps.executions, deps.payloads, ExecutionId(execution_id),
        execution_input=KEEP_INPUT if request.input is msgspec.UNSET else request.input,
        version=request.version, from_node=request.from_node, options=options,
        archived=lambda eid: readmodel.archived_state(deps.db, eid),
    )  # fmt: skip
    state = started.state
    return RerunAccepted(
        execution_id=state.execution_id,
        workflow_id=state.workflow_id,
        version=state.workflow_version,
        status=state.status,
        rerun_of=execution_id,
    )


@post(
    "/{workflow_id:str}/execute-many",
    status_code=HTTP_202_ACCEPTED,
    summary=f"Start up to {MAX_BULK} executions at once",
    description="One execution per entry of `inputs`; their ids in input order. With `idempotencyKeyPrefix`, input "
    "`i` has the idempotency key `<prefix>:<i>`. Takes the options of `execute` for every execution.",
    responses=problem_responses(400, 404, 413, 422, 503),
)
async def execute_many(workflow_id: FromPath[str], deps: Deps, data: JSONBody[ExecuteManyRequest]) -> ExecutionsStarted:
    errors: list[FieldError] = []
    if not isinstance(data.inputs, list):
        errors.append(FieldError("inputs", f"inputs must be an array, got {json_type(data.inputs)}"))
    prefix = data.idempotency_key_prefix
    if prefix is not None and (not isinstance(prefix, str) or not 1 <= len(prefix) <= 150):
        errors.append(FieldError("idempotencyKeyPrefix", "idempotencyKeyPrefix must be a string of 1-150 characters"))
    if data.version is not None and (not is_int(data.version) or data.version < 1):
        errors.append(FieldError("version", f"version must be a positive integer, got {json_type(data.version)}"))
    if errors:
        raise InvalidInput("invalid bulk start", errors)
    workflow = await resolve_workflow(deps.workflows, WorkflowId(workflow_id), data.version)
    options = read_options(data.priority, data.timeout_ms, data.run_at, now_ms())
    ids = await start_many(deps.redis, deps.executions, deps.payloads, workflow, data.inputs, prefix, options)
    return ExecutionsStarted(execution_ids=list(ids))


async def _bulk(deps: Deps, data: BulkCommandRequest, name: str) -> BulkAccepted:
    ids = await _selected(deps, data)
    outcome = await command_many(deps.executions, ids, name)
    skipped = [SkippedExecution(execution_id=s.execution_id, reason=s.reason) for s in outcome.skipped]
    return BulkAccepted(accepted=len(outcome.accepted), skipped=skipped)


async def _selected(deps: Deps, data: BulkCommandRequest) -> list[str]:
    if data.execution_ids is not None:
        ids: Any = data.execution_ids
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_SELECTED:
            problem = FieldError("executionIds", f"executionIds must be an array of at most {MAX_SELECTED} ids")
            raise InvalidInput("invalid selection", [problem])
        if data.workflow_id is not None or data.status is not None:
            problem = FieldError("executionIds", "give either executionIds or workflowId and status, not both")
            raise InvalidInput("invalid selection", [problem])
        return list(ids)
    errors: list[FieldError] = []
    if not isinstance(data.workflow_id, str):
        errors.append(FieldError("workflowId", "give executionIds, or a workflowId (a string) and a status"))
    if not isinstance(data.status, str) or data.status not in set(ExecutionStatus):  # a JSON object is unhashable
        known = ", ".join(ExecutionStatus)
        errors.append(FieldError("status", f"status must be one of {known}, got {data.status!r}"))
    if errors:
        raise InvalidInput("invalid selection", errors)
    rows = await readmodel.executions(
        deps.db, workflow_id=str(data.workflow_id), status=str(data.status), limit=MAX_SELECTED, cursor=None
    )
    return [row.execution_id for row in rows]


_BULK_RESPONSES = problem_responses(400, 422, 503)
_BULK_DESCRIPTION = (
    "Acts on `executionIds`, or on the executions of `workflowId` with `status` (read model). Each execution whose "
    "state does not allow the command is listed in `skipped` with the reason."
)


@post(
    "/cancel",
    status_code=HTTP_202_ACCEPTED,
    summary="Cancel many executions",
    description=_BULK_DESCRIPTION,
    responses=_BULK_RESPONSES,
)
async def cancel_many(deps: Deps, data: JSONBody[BulkCommandRequest]) -> BulkAccepted:
    return await _bulk(deps, data, "cancel")


@post(
    "/pause",
    status_code=HTTP_202_ACCEPTED,
    summary="Pause many executions",
    description=_BULK_DESCRIPTION,
    responses=_BULK_RESPONSES,
)
async def pause_many(deps: Deps, data: JSONBody[BulkCommandRequest]) -> BulkAccepted:
    return await _bulk(deps, data, "pause")


@post(
    "/resume",
    status_code=HTTP_202_ACCEPTED,
    summary="Resume many executions",
    description=_BULK_DESCRIPTION,
    responses=_BULK_RESPONSES,
)
async def resume_many(deps: Deps, data: JSONBody[BulkCommandRequest]) -> BulkAccepted:
    return await _bulk(deps, data, "resume")


EXECUTION_HANDLERS = [set_timeout, rerun, cancel_many, pause_many, resume_many]
WORKFLOW_HANDLERS = [execute_many]
