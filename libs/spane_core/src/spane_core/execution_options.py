"""The options of a start (``POST /execute``, ``execute-many``, a re-run), read from JSON and checked: wrong types
and ranges are ``InvalidInput`` naming the field, as the API answers them (422)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spane_core.commands import ReusedNode, Start
from spane_core.definition import Workflow
from spane_core.errors import FieldError, InvalidInput
from spane_core.fields import is_int, json_type
from spane_core.ids import ExecutionId, NodeId
from spane_core.keys import DEFAULT_PRIORITY, PRIORITIES

# The longest a call may hold for its execution to finish (``waitMs`` of an execute call or a webhook trigger).
MAX_WAIT_MS = 300_000


@dataclass(frozen=True, slots=True)
class ExecutionOptions:
    priority: int = DEFAULT_PRIORITY  # 1-10, higher runs first
    timeout_ms: int | None = None  # None: the definition's ``timeoutMs``, if any
    run_at: int | None = None  # epoch ms; None: now


@dataclass(frozen=True, slots=True)
class Rerun:
    """A start that runs an earlier execution again, keeping the recorded outputs of ``reused``."""

    of: ExecutionId
    from_node: NodeId | None = None
    reused: tuple[ReusedNode, ...] = ()


def start_command(
    execution_id: ExecutionId,
    workflow: Workflow,
    execution_input: Any,
    idempotency_key: str | None,
    options: ExecutionOptions,
    rerun: Rerun | None = None,
    traceparent: str | None = None,
) -> Start:
    timeout_ms = options.timeout_ms if options.timeout_ms is not None else workflow.definition.timeout_ms
    return Start(
        execution_id=execution_id,
        input=execution_input,
        idempotency_key=idempotency_key,
        priority=options.priority,
        timeout_ms=timeout_ms,
        run_at=options.run_at,
        rerun_of=None if rerun is None else rerun.of,
        from_node=None if rerun is None else rerun.from_node,
        reused=() if rerun is None else rerun.reused,
        traceparent=traceparent,
    )


def read_options(priority: object, timeout_ms: object, run_at: object, now: int) -> ExecutionOptions:
    """Options from JSON values (None: not given); ``InvalidInput`` lists every bad one."""
    errors: list[FieldError] = []
    options = ExecutionOptions(
        priority=DEFAULT_PRIORITY if priority is None else _priority(priority, errors),
        timeout_ms=None if timeout_ms is None else positive_ms(timeout_ms, "timeoutMs", errors),
        run_at=None if run_at is None else _run_at(run_at, now, errors),
    )
    if errors:
        raise InvalidInput("invalid execution options", errors)
    return options


def positive_ms(value: object, path: str, errors: list[FieldError]) -> int:
    if not is_int(value) or value < 1:
        shown = value if is_int(value) else json_type(value)
        errors.append(FieldError(path, f"{path} must be a positive integer (milliseconds), got {shown}"))
        return 0
    return value


def _priority(value: object, errors: list[FieldError]) -> int:
    if not is_int(value) or value not in PRIORITIES:
        shown = value if is_int(value) else json_type(value)
        errors.append(FieldError("priority", f"priority must be an integer from 1 to 10 (higher first), got {shown}"))
        return DEFAULT_PRIORITY
    return value


def _run_at(value: object, now: int, errors: list[FieldError]) -> int | None:
    if not isinstance(value, str):
        errors.append(FieldError("runAt", f"runAt must be an ISO 8601 time with a zone, got {json_type(value)}"))
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        errors.append(FieldError("runAt", f"runAt must be an ISO 8601 time with a zone, got {value!r}"))
        return None
    if when.tzinfo is None:
        errors.append(FieldError("runAt", f"runAt needs a zone (such as Z or +02:00): {value!r}"))
        return None
    at = int(when.timestamp() * 1000)
    if at <= now:
        errors.append(FieldError("runAt", f"runAt is in the past: {value!r}"))
        return None
    return at


def read_wait_ms(value: Any) -> int | None:
    """``waitMs`` of an execute call: None, or an integer from 1 to ``MAX_WAIT_MS``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WAIT_MS:
        shown = value if isinstance(value, int | float) and not isinstance(value, bool) else json_type(value)
        problem = FieldError("waitMs", f"waitMs must be an integer from 1 to {MAX_WAIT_MS} (ms), got {shown}")
        raise InvalidInput("invalid waitMs", [problem])
    return value
