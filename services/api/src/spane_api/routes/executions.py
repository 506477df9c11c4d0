"""``/api/executions``: list and read executions, their history; pause, resume or cancel them, or signal them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any

from litestar import get, post
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from spane_core import usecases
from spane_core.codec import envelope_to_dict
from spane_core.errors import NotFound, StateConflict, StorageError
from spane_core.ids import ExecutionId
from spane_core.node_schemas import SIGNAL_NAME_PATTERN
from spane_core.state import ExecutionState, ExecutionStatus
from spane_core.usecases import command_execution

from spane_api import readmodel
from spane_api.deps import Deps
from spane_api.problems import problem_responses
from spane_api.schemas import CommandAccepted, ExecutionPage, ExecutionView, History
from spane_api.views import execution_from_snapshot, with_payloads

MAX_PAGE = 500
NO_NUL = "^[^\\x00]*$"  # ids never hold U+0000 (Postgres text cannot)


def _not_found(execution_id: str) -> NotFound:
    return NotFound(f"execution {execution_id!r} not found")


@get("/", summary="List executions, newest first", responses=problem_responses(400, 503))
async def list_executions(
    deps: Deps,
    workflow_id: Annotated[str | None, QueryParameter(name="workflowId", pattern=NO_NUL)] = None,
    status: Annotated[ExecutionStatus | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="The `nextCursor` of the previous page.", pattern=NO_NUL)
    ] = None,
) -> ExecutionPage:
    rows = await readmodel.executions(
        deps.db, workflow_id=workflow_id, status=status, limit=limit + 1, cursor=cursor or None
    )
    more = len(rows) > limit
    items = rows[:limit]
    return ExecutionPage(items=items, next_cursor=items[-1].execution_id if more else None)


@get("/{execution_id:str}", summary="Read an execution and its nodes", responses=problem_responses(404, 503))
async def read_execution(execution_id: FromPath[str], deps: Deps) -> ExecutionView:
    view = await execution_view(deps, execution_id)
    view.children = await _children(deps, execution_id, view)
    return await with_payloads(deps.payloads, view)


async def _children(deps: Deps, execution_id: str, view: ExecutionView) -> dict[str, list[str]]:
    """The children of each sub-workflow node: the projected ones, and the current try's from the snapshot (it
    may not be projected yet)."""
    try:
        children = await readmodel.children(deps.db, execution_id)
    except StorageError:
        children = {}
    state = (
        await deps.executions.load(execution_id) if any(n.status == "waiting" for n in view.nodes.values()) else None
    )
    for node_id, node in (state.nodes if state is not None else {}).items():
        child = node.child_execution_id
        if child is not None and child not in children.get(node_id, []):
            children.setdefault(node_id, []).append(child)
    return children


async def execution_view(deps: Deps, execution_id: str) -> ExecutionView:
    snapshot_seq, projected = await asyncio.gather(
        _snapshot_seq(deps, execution_id), readmodel.execution(deps.db, execution_id), return_exceptions=True
    )
    if isinstance(snapshot_seq, BaseException):
        raise snapshot_seq
    if isinstance(projected, BaseException) and not isinstance(projected, StorageError):
        raise projected
    row = None if isinstance(projected, BaseException) else projected
    # Read-your-writes: the projector may not have caught up with the latest commit, or Postgres may be away;
    # the snapshot in Redis is current.
    if snapshot_seq is not None and (row is None or row[1] < snapshot_seq):
        state = await deps.executions.load(execution_id)
        if state is not None:
            return execution_from_snapshot(state)
    if isinstance(projected, StorageError):
        raise projected
    if row is None:
        raise _not_found(execution_id)
    return row[0]


async def _snapshot_seq(deps: Deps, execution_id: str) -> int | None:
    seq = await deps.redis.hget(deps.executions.keys(execution_id).snapshot(execution_id), "v")
    return None if seq is None else int(seq)


@get("/{execution_id:str}/history", summary="The execution's log, in order", responses=problem_responses(404, 503))
async def read_history(execution_id: FromPath[str], deps: Deps) -> History:
    envelopes = await deps.executions.read_log(execution_id)
    events = [envelope_to_dict(e) for e in envelopes]
    if not events:
        events = await readmodel.archived_events(deps.db, execution_id)
    if not events:
        raise _not_found(execution_id)
    return History(events=await deps.payloads.resolve_many(events))


async def _command(deps: Deps, execution_id: str, name: str) -> CommandAccepted:
    return await _accepted(
        deps, execution_id, name, command_execution(deps.executions, ExecutionId(execution_id), name)
    )


async def _accepted(
    deps: Deps, execution_id: str, verb: str, sending: Coroutine[Any, Any, ExecutionState]
) -> CommandAccepted:
    """What ``sending`` a command to the execution returns: its new status."""
    try:
        state = await sending
    except NotFound:
        # Redis no longer holds a finished execution after its retention; the read model still knows it.
        found = await readmodel.execution(deps.db, execution_id)
        if found is None:
            raise
        raise StateConflict(f"cannot {verb} an execution that is {found[0].status}") from None
    return CommandAccepted(execution_id=state.execution_id, status=state.status)


_COMMAND_RESPONSES = problem_responses(404, 409)


@post("/{execution_id:str}/pause", status_code=HTTP_202_ACCEPTED, summary="Pause", responses=_COMMAND_RESPONSES)
async def pause_execution(execution_id: FromPath[str], deps: Deps) -> CommandAccepted:
    return await _command(deps, execution_id, "pause")


@post("/{execution_id:str}/resume", status_code=HTTP_202_ACCEPTED, summary="Resume", responses=_COMMAND_RESPONSES)
async def resume_execution(execution_id: FromPath[str], deps: Deps) -> CommandAccepted:
    return await _command(deps, execution_id, "resume")


@post("/{execution_id:str}/cancel", status_code=HTTP_202_ACCEPTED, summary="Cancel", responses=_COMMAND_RESPONSES)
async def cancel_execution(execution_id: FromPath[str], deps: Deps) -> CommandAccepted:
    return await _command(deps, execution_id, "cancel")


@post(
    "/{execution_id:str}/signals/{name:str}",
    status_code=HTTP_202_ACCEPTED,
    summary="Send a signal: the `wait` nodes waiting for it complete, with the body as their output",
    description="The body is any JSON value (none: `null`); it becomes the output of each `wait` node of the"
    " execution whose `signal` is `name` and that is waiting. 409 when none waits for it (a signal is never kept"
    " for later) or the execution is finished.",
    responses=problem_responses(400, 404, 409, 422),
)
async def signal_execution(
    execution_id: FromPath[str],
    name: Annotated[str, PathParameter(pattern=SIGNAL_NAME_PATTERN)],
    deps: Deps,
    data: JSONBody[Any] = None,
) -> CommandAccepted:
    sending = usecases.signal_execution(deps.executions, deps.payloads, ExecutionId(execution_id), name, data)
    return await _accepted(deps, execution_id, "signal", sending)


HANDLERS = [
    list_executions,
    read_execution,
    read_history,
    pause_execution,
    resume_execution,
    cancel_execution,
    signal_execution,
]
