"""``condition``: choose which children run by the truth of a JMESPath expression on the input.

The output is the input unchanged. ``trueBranch`` / ``falseBranch`` name a child id or a list of them; the side
that is not chosen is skipped, and a missing branch means that no child runs on that side. Truth follows JMESPath:
``false``, ``null``, ``""``, ``[]`` and ``{}`` are false; everything else, including ``0``, is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spane_core.sdk import NodeContext, NodeResult, NonRetryableError

from spane_worker.executors.transform import search


def is_truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def branch(config: Mapping[str, Any], key: str) -> list[str]:
    match config.get(key):
        case None:
            return []
        case str() as single:
            return [single]
        case list() as many if all(isinstance(item, str) for item in many):
            return [str(item) for item in many]
        case other:
            raise NonRetryableError(f"condition.{key} must be a node id or a list of them, got {other!r}")


def evaluate(config: Mapping[str, Any], data: Any) -> NodeResult:
    expression = config.get("expression")
    if not isinstance(expression, str) or not expression:
        raise NonRetryableError("condition.expression must be a JMESPath expression")
    side = "trueBranch" if is_truthy(search(expression, data)) else "falseBranch"
    return NodeResult(output=data, next_nodes=branch(config, side))


async def condition(ctx: NodeContext) -> NodeResult:
    return evaluate(ctx.config, ctx.input)
