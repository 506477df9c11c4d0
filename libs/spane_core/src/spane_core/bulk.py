"""Bulk operations: start up to ``MAX_BULK`` executions of one workflow in one call, and send one user command to
many executions. Each execution's transition stays one atomic commit; the commits go in one pipelined round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from spane_core.definition import Workflow
from spane_core.errors import FieldError, InternalError, InvalidInput, SpaneError
from spane_core.execution_options import ExecutionOptions, start_command
from spane_core.ids import ExecutionId, new_execution_id
from spane_core.keys import WorkflowKeys
from spane_core.settings import IDEMPOTENCY_KEY_TTL_S
from spane_core.store.executions import ExecutionStore, Transition
from spane_core.store.payloads import PayloadStore
from spane_core.usecases import USER_COMMANDS, claim_execution_id, stored_value

MAX_BULK = 1000


@dataclass(frozen=True, slots=True)
class Skipped:
    execution_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    accepted: list[ExecutionId]
    skipped: list[Skipped]


async def start_many(
    redis: Redis,
    executions: ExecutionStore,
    payloads: PayloadStore,
    workflow: Workflow,
    inputs: Sequence[Any],
    idempotency_key_prefix: str | None = None,
    options: ExecutionOptions | None = None,
) -> list[ExecutionId]:
    """Start one execution per input; their ids, in input order. With a prefix, input ``i`` has the idempotency key
    ``<prefix>:<i>``, so that a retried call starts none twice."""
    if not 1 <= len(inputs) <= MAX_BULK:
        problem = FieldError("inputs", f"give from 1 to {MAX_BULK} inputs, got {len(inputs)}")
        raise InvalidInput("invalid bulk start", [problem])
    keys = [None if idempotency_key_prefix is None else f"{idempotency_key_prefix}:{i}" for i in range(len(inputs))]
    stored = [await stored_value(payloads, value, f"inputs[{i}]") for i, value in enumerate(inputs)]
    ids = await _claim_ids(redis, workflow.id, keys)
    opts = options or ExecutionOptions()
    transitions = [
        Transition(eid, [start_command(eid, workflow, value, key, opts)], workflow=workflow)
        for eid, value, key in zip(ids, stored, keys, strict=True)
    ]
    for outcome in await executions.transact(transitions):
        if outcome.error is not None:
            raise outcome.error
    return ids


async def _claim_ids(redis: Redis, workflow_id: str, keys: list[str | None]) -> list[ExecutionId]:
    """An id per key, claimed as ``claim_execution_id`` does, but in one pipelined round trip (two when some keys
    named executions already)."""
    ids = [new_execution_id() for _ in keys]
    claimed = [i for i, key in enumerate(keys) if key is not None]
    if not claimed:
        return ids
    pipe = redis.pipeline(transaction=False)
    for i in claimed:
        pipe.set(WorkflowKeys.idempotency(workflow_id, str(keys[i])), ids[i], nx=True, ex=IDEMPOTENCY_KEY_TTL_S)
    taken = [i for i, fresh in zip(claimed, await pipe.execute(), strict=True) if not fresh]
    for i in taken:  # the key named an execution already: that one, claimed the careful way
        ids[i] = await claim_execution_id(redis, workflow_id, str(keys[i]))
    return ids


async def command_many(executions: ExecutionStore, execution_ids: Sequence[str], name: str) -> BulkOutcome:
    """Send the command ``name`` (a key of ``USER_COMMANDS``) to each execution; those whose state does not allow
    it (or that are unknown) are skipped with the reason."""
    unique = list(dict.fromkeys(execution_ids))
    transitions = [Transition(ExecutionId(eid), [USER_COMMANDS[name]()]) for eid in unique]
    accepted: list[ExecutionId] = []
    skipped: list[Skipped] = []
    for outcome in await executions.transact(transitions):
        if isinstance(outcome.error, InternalError):  # its message names internals; the store logged it
            skipped.append(Skipped(outcome.execution_id, "an internal error occurred; it has been logged"))
        elif isinstance(outcome.error, SpaneError):
            skipped.append(Skipped(outcome.execution_id, str(outcome.error)))
        else:
            accepted.append(outcome.execution_id)
    return BulkOutcome(accepted, skipped)
