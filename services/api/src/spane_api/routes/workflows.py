"""``/api/workflows``: store definitions as immutable versions, read them, delete them, and start executions."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from spane_core.errors import FieldError, InvalidInput, NotFound
from spane_core.execution_options import MAX_WAIT_MS, read_options, read_wait_ms
from spane_core.ids import WorkflowId
from spane_core.store.executions import now_ms
from spane_core.subworkflows import check_child_workflows
from spane_core.trigger_secrets import keep_stored_secrets, masked_definition, masked_triggers
from spane_core.usecases import resolve_workflow, start_execution
from spane_core.validation import parse_definition

from spane_api import readmodel
from spane_api.awaiting import finished_within
from spane_api.definition_schema import DEFINITION_SCHEMA
from spane_api.deps import Deps
from spane_api.operations import SAVED_WORKFLOW, STARTED_EXECUTION
from spane_api.problems import problem_responses
from spane_api.schemas import (
    ExecuteRequest,
    ExecutionAccepted,
    ExecutionView,
    VersionInfo,
    VersionList,
    WorkflowList,
    WorkflowSaved,
    WorkflowVersionView,
)
from spane_api.views import execution_from_snapshot, with_payloads

DefinitionBody = Annotated[
    dict[str, Any],
    Body(
        title="Workflow definition",
        description="A SPANE workflow definition: `id`, `nodes`, and optionally `name`, `entryNodeId`, "
        "`maxConcurrency` and `triggers`.",
        schema_extra=DEFINITION_SCHEMA,
    ),
]
VersionQuery = Annotated[
    int | None, QueryParameter(ge=1, le=2**31 - 1, description="A version; the latest when omitted.")
]


@post(
    "/",
    status_code=HTTP_201_CREATED,
    summary="Store a workflow definition",
    description="201 with a new version; 200 with the latest version when the definition is identical to it.",
    responses={
        HTTP_200_OK: ResponseSpec(WorkflowSaved, description="Identical to the latest version"),
        **problem_responses(400, 413, 422),
    },
    operation_class=SAVED_WORKFLOW,
)
async def save_workflow(data: DefinitionBody, deps: Deps) -> Response[WorkflowSaved]:
    definition = parse_definition(data, deps.node_types, deps.settings.definition_limits)
    definition = await keep_stored_secrets(deps.workflows, definition)
    await check_child_workflows(definition, deps.workflows)
    version, created = await deps.workflows.register(definition, now_ms())
    if created:
        deps.metrics.workflows_registered.inc()
    body = WorkflowSaved(workflow_id=definition.id, version=version)
    return Response(body, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


@get("/", summary="List workflows (deleted ones left out)", responses=problem_responses(503))
async def list_workflows(deps: Deps) -> WorkflowList:
    items = await readmodel.list_workflows(deps.db)
    for item in items:
        item.triggers = masked_triggers(item.triggers)
    return WorkflowList(items=items)


@get("/{workflow_id:str}", summary="Read a version of a workflow", responses=problem_responses(400, 404))
async def read_workflow(workflow_id: FromPath[str], deps: Deps, version: VersionQuery = None) -> WorkflowVersionView:
    latest = await _require_workflow(deps, workflow_id)
    version = latest if version is None else version
    definition = await readmodel.workflow_definition(deps.db, workflow_id, version)
    if definition is None:  # the projector has not stored this version yet: read it from the registry
        definition = msgspec.to_builtins((await deps.workflows.get(WorkflowId(workflow_id), version)).definition)
    return WorkflowVersionView(workflow_id=workflow_id, version=version, definition=masked_definition(definition))


@get("/{workflow_id:str}/versions", summary="List the versions of a workflow", responses=problem_responses(404))
async def list_versions(workflow_id: FromPath[str], deps: Deps) -> VersionList:
    latest = await _require_workflow(deps, workflow_id)
    stored = {item.version: item for item in await readmodel.workflow_versions(deps.db, workflow_id)}
    # A version the projector has not stored yet is listed without its creation time.
    items = [stored.get(v) or VersionInfo(version=v, created_at=None) for v in range(1, latest + 1)]
    return VersionList(items=items)


async def _require_workflow(deps: Deps, workflow_id: str) -> int:
    """The latest version; the registry in Redis, not the read model that may lag, says whether it exists."""
    latest = await deps.workflows.latest_version(workflow_id)
    if latest is None:
        raise NotFound(f"workflow {workflow_id!r} not found")
    return latest


@delete(
    "/{workflow_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Delete a workflow: its triggers stop; running executions go on",
    responses=problem_responses(404),
)
async def delete_workflow(workflow_id: FromPath[str], deps: Deps) -> None:
    if not await deps.workflows.delete(workflow_id, now_ms()):
        raise NotFound(f"workflow {workflow_id!r} not found")


@post(
    "/{workflow_id:str}/execute",
    status_code=HTTP_202_ACCEPTED,
    summary="Start an execution (and, with `waitMs`, answer with it once it has finished)",
    description="The same `idempotencyKey` (per workflow, for 24 hours) answers with the same execution. An input "
    "whose JSON is larger than `SPANE_PAYLOAD_INLINE_MAX` is stored in Postgres (503 while it is unavailable). "
    "Options: `priority` 1-10 (default 5, higher runs first), `timeoutMs` (else the definition's; the execution "
    "fails with ExecutionTimeout when not finished in time), `runAt` (ISO time with a zone, in the future: the "
    f"execution is `scheduled` until then), `waitMs` (1-{MAX_WAIT_MS}: wait that long for the execution to finish; "
    "200 with the finished execution, as `GET /api/executions/{id}` shows it, if it does, else 202 as without it).",
    responses={
        HTTP_200_OK: ResponseSpec(ExecutionView, description="Finished within `waitMs`"),
        **problem_responses(400, 404, 413, 422, 503),
    },
    operation_class=STARTED_EXECUTION,
)
async def execute_workflow(
    workflow_id: FromPath[str],
    deps: Deps,
    data: JSONBody[ExecuteRequest | None] = None,
    traceparent: Annotated[str | None, HeaderParameter(name="traceparent", required=False)] = None,
) -> Response[ExecutionAccepted | ExecutionView]:
    request = data or ExecuteRequest()
    # The workflow first, then the input: an unknown workflow is a 404 whatever the body holds.
    workflow = await resolve_workflow(deps.workflows, WorkflowId(workflow_id), request.version)
    options = read_options(request.priority, request.timeout_ms, request.run_at, now_ms())
    wait_ms = read_wait_ms(request.wait_ms)
    started = await start_execution(
        deps.redis, deps.executions, deps.payloads, workflow, _input_of(request), request.idempotency_key, options,
        traced=deps.telemetry.tracing, caller_traceparent=traceparent,
    )  # fmt: skip
    state = started.state
    if wait_ms is not None:
        final = await finished_within(deps.hub, deps.executions, state.execution_id, wait_ms)
        if final is not None:
            view = await with_payloads(deps.payloads, execution_from_snapshot(final))
            return Response(view, status_code=HTTP_200_OK)
    accepted = ExecutionAccepted(
        execution_id=state.execution_id,
        workflow_id=state.workflow_id,
        version=state.workflow_version,
        status=state.status,
    )
    return Response(accepted, status_code=HTTP_202_ACCEPTED)


def _input_of(request: ExecuteRequest) -> Any:
    given, legacy = request.input, request.initial_data
    if given is msgspec.UNSET:
        return None if legacy is msgspec.UNSET else legacy
    if legacy is not msgspec.UNSET and legacy != given:
        problem = FieldError("initialData", "give the input once: `input` and `initialData` differ")
        raise InvalidInput("ambiguous execution input", [problem])
    return given


HANDLERS = [save_workflow, list_workflows, read_workflow, list_versions, delete_workflow, execute_workflow]
