"""How large a workflow definition may be: a setting (``SPANE_MAX_NODES``, ``SPANE_MAX_EDGES``), checked before
any other rule so that an oversized definition costs a count, not a validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spane_core.errors import FieldError, InvalidInput

DEFAULT_MAX_NODES = 20_000
DEFAULT_MAX_EDGES = 100_000


@dataclass(frozen=True, slots=True)
class DefinitionLimits:
    max_nodes: int = DEFAULT_MAX_NODES
    max_edges: int = DEFAULT_MAX_EDGES


DEFAULT_LIMITS = DefinitionLimits()


def check_size(nodes: Iterable[tuple[str, Iterable[str], Iterable[str]]], limits: DefinitionLimits) -> None:
    """Raise ``InvalidInput`` naming the limit when the definition has more nodes or edges than ``limits`` allow.

    ``nodes``: each node's id, inputs and outputs. Edges are counted as the engine sees them: the union of every
    ``outputs`` and every ``inputs`` entry.
    """
    nodes = list(nodes)
    if len(nodes) > limits.max_nodes:
        message = f"{len(nodes)} nodes: a workflow may have at most {limits.max_nodes} (the setting SPANE_MAX_NODES)"
        raise InvalidInput("workflow definition too large", [FieldError("nodes", message)])
    edges: set[tuple[str, str]] = set()
    for node_id, inputs, outputs in nodes:
        edges.update((parent, node_id) for parent in inputs)
        edges.update((node_id, child) for child in outputs)
        if len(edges) > limits.max_edges:
            message = f"more than {limits.max_edges} edges: the most a workflow may have (the setting SPANE_MAX_EDGES)"
            raise InvalidInput("workflow definition too large", [FieldError("nodes", message)])
