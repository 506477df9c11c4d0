"""The executors' SDK: what a node type is, what it receives, and how the worker finds it.

A node type is an async function of a ``NodeContext``, registered by name::

    from spane_core.sdk import NodeContext, executor

    @executor("enrich-user")
    async def enrich_user(ctx: NodeContext) -> dict[str, Any]:
        return {**ctx.input, "vip": True}

It may return plain data (the node's output), a ``NodeResult`` naming the children to run, or a dict with a
``nextNodes`` key (as executors of the TypeScript engine do). Raising ``NonRetryableError`` fails the node at once;
any other exception is retried per the node's ``retryPolicy``.

Workers import the modules named in ``SPANE_PLUGINS`` and the ``spane.executors`` entry point group
(``load_plugins``); importing a module runs its ``@executor`` decorators, which register into ``registry``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, TypeAlias, TypeVar

from spane_core.errors import InvalidResult, NonRetryableError, PluginError
from spane_core.ids import ExecutionId, NodeId, WorkflowId
from spane_core.node_schemas import NodeTypeSpec
from spane_core.secrets import Secrets

__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "ExecutorRegistry",
    "NodeContext",
    "NodeResult",
    "NonRetryableError",
    "executor",
    "load_plugins",
    "node_result",
    "registry",
    "secret",
]

ENTRY_POINT_GROUP = "spane.executors"


@dataclass(frozen=True, slots=True)
class NodeContext:
    """One try of one node, as its executor sees it."""

    execution_id: ExecutionId
    workflow_id: WorkflowId
    node_id: NodeId
    node_type: str
    attempt: int  # 1 for the first try
    input: Any
    config: Mapping[str, Any]  # the node's ``config`` from the definition
    idempotency_key: str  # ``executionId:nodeId:attempt``: make side effects safe to repeat with it
    depth: int = 0  # nesting depth of sub-workflows; 0 for a top-level execution
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.getLogger("spane.executor"), compare=False, repr=False
    )
    # W3C trace context naming this try's span: send it on to what the node calls (the http node does).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class NodeResult:
    """An output plus the children to run; the node's other children are skipped. ``None`` runs them all."""

    output: Any = None
    next_nodes: list[str] | None = None


Executor: TypeAlias = Callable[[NodeContext], Awaitable[Any]]
E = TypeVar("E", bound=Executor)


def node_result(value: Any) -> NodeResult:
    """What an executor's return value means: its output and the children it chose.

    A dict with a ``nextNodes`` key names the children (a string or a list of strings); the output is the dict
    without that key, except that the TypeScript engine's ``{"success", "data", "nextNodes"}`` result shape gives
    ``data`` as the output (and ``success: false`` fails the node without retries).
    """
    if isinstance(value, NodeResult):
        return NodeResult(value.output, _next_nodes(value.next_nodes))
    if isinstance(value, dict) and "nextNodes" in value:
        rest = {k: v for k, v in value.items() if k != "nextNodes"}
        nexts = _next_nodes(value["nextNodes"])
        if "success" in rest and set(rest) <= {"success", "data", "error", "skipped"}:
            if rest["success"] is False:
                raise NonRetryableError(str(rest.get("error") or "the executor reported failure"))
            return NodeResult(rest.get("data"), nexts)
        return NodeResult(rest, nexts)
    return NodeResult(value)


def _next_nodes(value: object) -> list[str] | None:
    match value:
        case None:
            return None
        case str():
            return [value]
        case list() | tuple() if all(isinstance(item, str) for item in value):
            return [str(item) for item in value]
        case _:
            raise InvalidResult(f"nextNodes must be a node id or a list of node ids, got {value!r}")


class ExecutorRegistry:
    """Executors by node type name, each with the schema its node config must satisfy (``None``: any object)."""

    def __init__(self) -> None:
        self._executors: dict[str, Executor] = {}
        self._schemas: dict[str, NodeTypeSpec | None] = {}
        self._cpu: set[str] = set()

    def register(
        self, name: str, fn: Executor, config_schema: NodeTypeSpec | None = None, *, cpu: bool = False
    ) -> None:
        """Register ``fn`` for node type ``name``; a later registration of the same name replaces it. ``cpu``: the
        worker runs it in a process of its pool, off its event loop (``fn`` must then be a module-level function)."""
        if not name:
            raise ValueError("a node type needs a non-empty name")
        self._executors[name] = fn
        self._schemas[name] = config_schema
        if cpu:
            self._cpu.add(name)
        else:
            self._cpu.discard(name)

    def is_cpu_bound(self, name: str) -> bool:
        return name in self._cpu

    def get(self, name: str) -> Executor | None:
        return self._executors.get(name)

    def names(self) -> list[str]:
        return sorted(self._executors)

    def config_schemas(self) -> dict[str, NodeTypeSpec | None]:
        """Node type name -> config schema, for the definition validator."""
        return dict(self._schemas)

    def update(self, other: ExecutorRegistry) -> None:
        """Add every executor of ``other``, replacing those of the same name."""
        self._executors.update(other._executors)
        self._schemas.update(other._schemas)
        self._cpu = (self._cpu - set(other._executors)) | other._cpu

    def __contains__(self, name: object) -> bool:
        return name in self._executors

    def __len__(self) -> int:
        return len(self._executors)


# The plugin entry point: ``@executor`` registers here. Creating an empty registry does no I/O.
registry = ExecutorRegistry()


def executor(name: str, config_schema: NodeTypeSpec | None = None, *, cpu: bool = False) -> Callable[[E], E]:
    """Register the decorated async function as the executor of node type ``name`` in ``registry``.

    ``cpu=True`` marks a CPU-bound node: the worker runs it in a process pool (``SPANE_WORKER_CPU_PROCESSES``), so
    that it cannot block the worker's event loop; its context and result must then be picklable."""

    def decorate(fn: E) -> E:
        registry.register(name, fn, config_schema, cpu=cpu)
        return fn

    return decorate


def secret(name: str) -> str:
    """A secret of the worker running the node, as an http node's ``{{ $secrets.NAME }}`` reads it:
    ``SPANE_SECRET_<NAME>`` in its environment, else the file ``<NAME>`` in ``SPANE_SECRETS_DIR``, read at each call
    (a rotated one is taken up at once). Raises ``MissingSecret``, which fails the node without retries, when it is
    not set. Keep it out of what the node returns and raises: outputs and errors are recorded."""
    return Secrets(os.environ.get("SPANE_SECRETS_DIR", "")).get(name)


def load_plugins(
    names: Iterable[str], target: ExecutorRegistry | None = None, *, entry_point_group: str = ENTRY_POINT_GROUP
) -> list[str]:
    """Import the plugin modules ``names`` and load the ``spane.executors`` entry points; returns what was loaded.

    A module registers its executors with ``@executor`` when imported. An entry point may name a module (imported
    the same way) or an executor function, registered under the entry point's name into ``target`` (default:
    ``registry``).
    """
    into = registry if target is None else target
    loaded: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not (name == e.name or name.startswith(f"{e.name}.")):
                raise PluginError(f"plugin module {name!r} could not be imported: {e}") from e
            raise PluginError(  # the module itself is missing (not one it imports): nothing to trace in its code
                f"plugin module {name!r} not found: it must be installed in the environment, or its directory be on"
                " PYTHONPATH (PYTHONPATH=. for a module in the current directory)"
            ) from None
        except Exception as e:
            raise PluginError(f"plugin module {name!r} could not be imported: {e}") from e
        loaded.append(name)
    for ep in entry_points(group=entry_point_group):
        try:
            value = ep.load()
        except Exception as e:
            raise PluginError(f"entry point {ep.name!r} ({ep.value}) could not be loaded: {e}") from e
        if not isinstance(value, ModuleType):
            if not callable(value):
                raise PluginError(f"entry point {ep.name!r} ({ep.value}) is neither a module nor an executor")
            into.register(ep.name, value)
        loaded.append(ep.value)
    return loaded
