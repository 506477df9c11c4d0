"""What the API asks of the core: start an execution (idempotently) and send it a user's command.

The rules are the core's (``decide``); this module only resolves the workflow version, claims idempotency keys,
stores large inputs aside (the claim check) and commits through the ``ExecutionStore``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from spane_core.claim_check import REF_KEY, references_in
from spane_core.commands import Cancel, Command, Pause, Resume, Start
from spane_core.definition import Workflow
from spane_core.errors import FieldError, InvalidInput, NotFound, StateConflict
from spane_core.ids import ExecutionId, WorkflowId, new_execution_id
from spane_core.keys import WorkflowKeys
from spane_core.settings import IDEMPOTENCY_KEY_TTL_S
from spane_core.state import ExecutionState
from spane_core.store.executions import Transition

from spane_api import readmodel
from spane_api.deps import Dependencies


@dataclass(frozen=True, slots=True)
class Started:
    state: ExecutionState
    created: bool  # False: the idempotency key named an execution that already existed


async def resolve_workflow(deps: Dependencies, workflow_id: WorkflowId, version: int | None) -> Workflow:
    """The version to run: 404 for an unknown or deleted workflow, 422 for a version it does not have."""
    latest = await deps.workflows.latest_version(workflow_id)
    if latest is None:
        raise NotFound(f"workflow {workflow_id!r} not found")
    if version is None:
        return await deps.workflows.get(workflow_id, latest)
    try:
        return await deps.workflows.get(workflow_id, version)
    except NotFound as e:
        problem = FieldError("version", f"workflow {workflow_id!r} has no version {version} (latest is {latest})")
        raise InvalidInput("the requested workflow version does not exist", [problem]) from e


async def claim_execution_id(redis: Redis, workflow_id: str, key: str) -> ExecutionId:
    """The execution id that ``key`` names, minted on its first use.

    The key is claimed before the execution starts; a crash in between leaves a claimed id whose execution does
    not exist yet, and the retry then starts it (starting is idempotent), so the two steps need no transaction.
    """
    name = WorkflowKeys.idempotency(workflow_id, key)
    while True:
        fresh = new_execution_id()
        if await redis.set(name, fresh, nx=True, ex=IDEMPOTENCY_KEY_TTL_S):
            return fresh
        existing = await redis.get(name)
        if existing is not None:  # else it expired between the two calls: claim it again
            return ExecutionId(existing.decode() if isinstance(existing, bytes) else existing)


async def start_execution(
    deps: Dependencies, workflow: Workflow, execution_input: Any, idempotency_key: str | None = None
) -> Started:
    if idempotency_key is None:
        execution_id = new_execution_id()
    else:
        execution_id = await claim_execution_id(deps.redis, workflow.id, idempotency_key)
    stored = await stored_value(deps, execution_input, "input")
    start = Start(execution_id=execution_id, input=stored, idempotency_key=idempotency_key)
    outcome = await deps.executions.apply(Transition(execution_id, [start], workflow=workflow))
    assert outcome.state is not None, "a committed start leaves a state"
    created = bool(outcome.events)
    if created:
        deps.metrics.executions_started.labels(workflow.id).inc()
    return Started(outcome.state, created)


async def stored_value(deps: Dependencies, value: Any, path: str) -> Any:
    """A user's value as it may enter the log: a reference to it when its JSON is over ``SPANE_PAYLOAD_INLINE_MAX``.

    A value that contains a reference already is refused (422): that shape is SPANE's own, and a user's copy of one
    would be read as the stored value it names.
    """
    if references_in(value):
        problem = FieldError(path, f"objects of the shape {{{REF_KEY!r}: ..., 'size': ...}} are reserved")
        raise InvalidInput("the value holds a reference to a stored payload", [problem])
    return await deps.payloads.store(value)


USER_COMMANDS: dict[str, Callable[[], Command]] = {"pause": Pause, "resume": Resume, "cancel": Cancel}


async def command_execution(deps: Dependencies, execution_id: str, name: str) -> ExecutionState:
    """Pause, resume or cancel; ``NotFound`` for an unknown execution, ``StateConflict`` when not allowed."""
    command = USER_COMMANDS[name]()
    try:
        outcome = await deps.executions.apply(Transition(ExecutionId(execution_id), [command]))
    except NotFound:
        # Redis no longer holds a finished execution after its retention; the read model still knows it.
        found = await readmodel.execution(deps.db, execution_id)
        if found is None:
            raise
        raise StateConflict(f"cannot {name} an execution that is {found[0].status}") from None
    assert outcome.state is not None
    return outcome.state
