"""``/api/dlq``: the dead-letter queue. List the nodes that ran out of tries, retry one (reviving its execution),
or delete one."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from spane_core import dead_letters
from spane_core.errors import StorageError

from spane_api import readmodel
from spane_api.deps import Deps
from spane_api.problems import problem_responses
from spane_api.schemas import DeadLetterPage, DeadLetterRetried, RetryRequest

MAX_PAGE = 500


@get("/", summary="List the dead-letter queue, newest first", responses=problem_responses(400, 503))
async def list_dead_letters(
    deps: Deps,
    workflow_id: Annotated[str | None, QueryParameter(name="workflowId")] = None,
    execution_id: Annotated[str | None, QueryParameter(name="executionId")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, QueryParameter(description="The `nextCursor` of the previous page.")] = None,
) -> DeadLetterPage:
    rows = await readmodel.dead_letters(
        deps.db, workflow_id=workflow_id, execution_id=execution_id, cursor=cursor or None, limit=limit + 1
    )
    items = rows[:limit]
    inputs = await deps.payloads.resolve_many([item.input for item in items])
    for item, value in zip(items, inputs, strict=True):
        item.input = value
    return DeadLetterPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


async def _listed(deps: Deps, entry_id: str) -> bool:
    """Whether the read model knows the entry; when Postgres is away, the live state alone decides."""
    try:
        return await readmodel.dead_letter(deps.db, entry_id) is not None
    except StorageError:
        return False


@post(
    "/{entry_id:str}/retry",
    status_code=HTTP_202_ACCEPTED,
    summary="Retry a dead letter",
    description="Reruns the node with fresh tries (on `input` when given) and revives its execution. 409 when the"
    " entry was retried already.",
    responses=problem_responses(400, 404, 409, 422),
)
async def retry_dead_letter(
    entry_id: FromPath[str], deps: Deps, data: JSONBody[RetryRequest | None] = None
) -> DeadLetterRetried:
    entry = dead_letters.parse_entry_id(entry_id)
    has_input = data is not None and data.input is not msgspec.UNSET
    state = await dead_letters.retry(
        deps.executions, deps.payloads, entry, listed=await _listed(deps, entry_id),
        input=data.input if data is not None and has_input else None, has_input=has_input,
    )  # fmt: skip
    deps.metrics.dlq_retries.inc()
    return DeadLetterRetried(
        id=entry_id, execution_id=entry.execution_id, node_id=entry.node_id,
        attempt=state.node(entry.node_id).attempt, status=state.status,
    )  # fmt: skip


@delete(
    "/{entry_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Delete a dead letter (the execution stays failed)",
    responses=problem_responses(404, 409),
)
async def delete_dead_letter(entry_id: FromPath[str], deps: Deps) -> None:
    entry = dead_letters.parse_entry_id(entry_id)
    await dead_letters.delete(deps.executions, entry, listed=await _listed(deps, entry_id))
    deps.metrics.dlq_deleted.inc()


HANDLERS = [list_dead_letters, retry_dead_letter, delete_dead_letter]
