"""What the edges ask of the core, whichever process they run in: start an execution, idempotently (the API's
execute route, and webhooks, cron and sub-workflows), and send a running one a user's command or a signal.

The rules are the core's (``decide``); this module resolves the workflow version, claims the idempotency key, stores
a large input aside (the claim check) and commits through the ``ExecutionStore``. Resources are arguments: the
caller owns them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from spane_core.claim_check import REF_KEY, references_in
from spane_core.commands import Cancel, Command, Pause, Resume, SetTimeout, Signal
from spane_core.definition import Workflow
from spane_core.errors import FieldError, InvalidInput, NotFound
from spane_core.execution_options import ExecutionOptions, Rerun, start_command
from spane_core.ids import ExecutionId, NodeId, WorkflowId, new_execution_id
from spane_core.keys import DEFAULT_PRIORITY, WorkflowKeys
from spane_core.node_schemas import is_signal_name
from spane_core.observe.context import start_context
from spane_core.settings import IDEMPOTENCY_KEY_TTL_S
from spane_core.state import ExecutionState
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.payloads import PayloadStore
from spane_core.store.workflows import WorkflowRegistry


@dataclass(frozen=True, slots=True)
class Started:
    """The execution after its start, and whether this call started it."""

    state: ExecutionState
    created: bool  # False: the idempotency key named an execution that already existed


async def start_workflow(
    redis: Redis,
    workflows: WorkflowRegistry,
    executions: ExecutionStore,
    payloads: PayloadStore,
    workflow_id: WorkflowId,
    execution_input: Any,
    *,
    version: int | None = None,
    idempotency_key: str | None = None,
    traced: bool = False,
    caller_traceparent: str | None = None,
    options: ExecutionOptions | None = None,
) -> Started:
    """Start ``version`` (the latest when None) of a workflow: ``resolve_workflow`` then ``start_execution``."""
    workflow = await resolve_workflow(workflows, workflow_id, version)
    return await start_execution(
        redis, executions, payloads, workflow, execution_input, idempotency_key, options,
        traced=traced, caller_traceparent=caller_traceparent,
    )  # fmt: skip


async def resolve_workflow(workflows: WorkflowRegistry, workflow_id: WorkflowId, version: int | None) -> Workflow:
    """The version to run: ``NotFound`` for an unknown or deleted workflow, ``InvalidInput`` (on ``version``) for a
    version it does not have."""
    latest = await workflows.latest_version(workflow_id)
    if latest is None:
        raise NotFound(f"workflow {workflow_id!r} not found")
    if version is None:
        return await workflows.get(workflow_id, latest)
    try:
        return await workflows.get(workflow_id, version)
    except NotFound as e:
        problem = FieldError("version", f"workflow {workflow_id!r} has no version {version} (latest is {latest})")
        raise InvalidInput("the requested workflow version does not exist", [problem]) from e


@dataclass(frozen=True, slots=True)
class ChildOf:
    """Where a sub-workflow's child execution comes from: its id (derived: a second start finds the first) and
    the parent node that waits for it. The child runs at its parent's ``priority`` and, when the parent is traced,
    under the span of the parent node's attempt (``traceparent``)."""

    execution_id: ExecutionId
    parent_execution_id: ExecutionId
    parent_node_id: NodeId
    depth: int
    priority: int = DEFAULT_PRIORITY
    traceparent: str | None = None


async def start_execution(
    redis: Redis,
    executions: ExecutionStore,
    payloads: PayloadStore,
    workflow: Workflow,
    execution_input: Any,
    idempotency_key: str | None = None,
    options: ExecutionOptions | None = None,
    rerun: Rerun | None = None,
    *,
    execution_id: ExecutionId | None = None,
    traced: bool = False,
    caller_traceparent: str | None = None,
    input_stored: bool = False,
    child_of: ChildOf | None = None,
) -> Started:
    """Start an execution of ``workflow``; with an ``idempotency_key`` seen before, the execution it named.

    An ``execution_id`` derived by the caller (a cron tick's) makes the start idempotent by itself: a second start
    of that id starts nothing. ``traced`` (tracing is on) gives it a trace context: under ``caller_traceparent`` (a
    W3C ``traceparent`` header) when that is valid, else a trace of its own. ``options``: its priority, timeout
    (else the definition's ``timeoutMs``) and start time; ``rerun``: the execution it runs again and the nodes it
    keeps from it; ``input_stored``: the input is in the log's form already (an earlier execution's). A sub-workflow's
    child (``child_of``) starts under its derived id, idempotent by itself too."""
    if child_of is not None:
        execution_id = child_of.execution_id
    elif execution_id is not None:
        pass
    elif idempotency_key is None:
        execution_id = new_execution_id()
    else:
        execution_id = await claim_execution_id(redis, workflow.id, idempotency_key)
    stored = execution_input if input_stored else await stored_value(payloads, execution_input, "input")
    traceparent = start_context(execution_id, caller_traceparent) if traced else None
    start = start_command(
        execution_id, workflow, stored, idempotency_key, options or ExecutionOptions(), rerun, traceparent
    )
    if child_of is not None:
        start = dataclasses.replace(
            start,
            parent_execution_id=child_of.parent_execution_id,
            parent_node_id=child_of.parent_node_id,
            depth=child_of.depth,
            priority=child_of.priority,
            traceparent=child_of.traceparent,
        )
    outcome = await executions.apply(Transition(execution_id, [start], workflow=workflow))
    assert outcome.state is not None, "a committed start leaves a state"
    # A start of an execution that exists already decides no events.
    return Started(outcome.state, created=bool(outcome.events))


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


async def stored_value(payloads: PayloadStore, value: Any, path: str) -> Any:
    """A user's value as it may enter the log: a reference to it when its JSON is over ``SPANE_PAYLOAD_INLINE_MAX``.

    A value that contains a reference already is refused (``InvalidInput`` on ``path``): that shape is SPANE's own,
    and a user's copy of one would be read as the stored value it names.
    """
    if references_in(value):
        problem = FieldError(path, f"objects of the shape {{{REF_KEY!r}: ..., 'size': ...}} are reserved")
        raise InvalidInput("the value holds a reference to a stored payload", [problem])
    return await payloads.store(value)


USER_COMMANDS: dict[str, Callable[[], Command]] = {"pause": Pause, "resume": Resume, "cancel": Cancel}


async def command_execution(executions: ExecutionStore, execution_id: ExecutionId, name: str) -> ExecutionState:
    """Send the command ``name`` (a key of ``USER_COMMANDS``); the state after it.

    Raises ``NotFound`` when Redis does not hold the execution (unknown, or finished and past its retention: the
    caller may know better from the read model) and ``StateConflict`` when its status does not allow the command.
    """
    command = USER_COMMANDS[name]()
    outcome = await executions.apply(Transition(execution_id, [command]))
    assert outcome.state is not None
    return outcome.state


async def set_execution_timeout(
    executions: ExecutionStore, execution_id: ExecutionId, timeout_ms: int
) -> ExecutionState:
    """Set or move the execution's deadline to ``timeout_ms`` from now; ``StateConflict`` when it is finished."""
    outcome = await executions.apply(Transition(execution_id, [SetTimeout(timeout_ms)]))
    assert outcome.state is not None
    return outcome.state


async def signal_execution(
    executions: ExecutionStore, payloads: PayloadStore, execution_id: ExecutionId, name: str, data: Any
) -> ExecutionState:
    """Send the signal ``name`` with ``data`` (stored aside when large): the ``wait`` nodes waiting for it complete.

    Raises ``InvalidInput`` for a name no node could wait for, ``NotFound`` as ``command_execution`` does, and
    ``StateConflict`` when no node of the execution waits for the signal.
    """
    if not is_signal_name(name):
        problem = FieldError("name", f"a signal name is 1-100 characters of A-Z a-z 0-9 _ . : -, got {name[:100]!r}")
        raise InvalidInput("invalid signal name", [problem])
    value = await stored_value(payloads, data, "data")
    outcome = await executions.apply(Transition(execution_id, [Signal(name, value)]))
    assert outcome.state is not None
    return outcome.state
