"""The JSON Schema of a workflow definition, as the OpenAPI document shows it for ``POST /api/workflows``.

It says exactly what ``spane_core.validation`` reads in its first pass (a field of the wrong JSON type is a 400):
the required fields, the JSON type of each optional one (``null`` counts as absent) and the id's pattern. Unknown
fields are allowed (ignored, for compatibility with the TypeScript format). The rules of the second pass (edges,
cycles, reachability, node configs, cron expressions) are not expressible here and answer 422.
"""

from __future__ import annotations

from typing import Any

from spane_core.fields import WORKFLOW_ID_RULE

# The integers SPANE can store (values travel as msgspec-encoded JSON); larger ones are a 400.
_INT64_MAX = 2**63 - 1


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STRINGS = {"type": "array", "items": {"type": "string"}}
_OBJECT: dict[str, Any] = {"type": "object"}

NODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": {"type": "string", "description": "Unique within the workflow."},
        "type": {"type": "string", "description": "A built-in node type or one a worker plugin registers."},
        "name": _optional({"type": "string"}),
        "config": _optional(_OBJECT),
        "inputs": _optional(_STRINGS),
        "outputs": _optional(_STRINGS),
        "retryPolicy": _optional(_OBJECT),
        "circuitBreaker": _optional(_OBJECT),
        "rateLimit": _optional(_OBJECT),
        "timeoutMs": _optional({"type": "integer", "minimum": 1, "maximum": _INT64_MAX}),
        "continueOnFail": _optional({"type": "boolean", "description": "Shorthand for retryPolicy.continueOnFail."}),
    },
}

TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["webhook", "schedule"]}, "config": _optional(_OBJECT)},
}

DEFINITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "nodes"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9._-]{1,100}$", "description": WORKFLOW_ID_RULE},
        "name": _optional({"type": "string", "description": "Defaults to the id."}),
        "description": _optional({"type": "string"}),
        "entryNodeId": _optional({"type": "string"}),
        "maxConcurrency": _optional({"type": "integer", "minimum": 1, "maximum": _INT64_MAX}),
        "nodes": {"type": "array", "minItems": 1, "items": NODE_SCHEMA},
        "triggers": _optional({"type": "array", "items": TRIGGER_SCHEMA}),
    },
    "examples": [
        {
            "id": "hello-diamond",
            "name": "Hello diamond",
            "nodes": [
                {"id": "start", "type": "transform", "outputs": ["greet", "shout"]},
                {"id": "greet", "type": "transform", "config": {"set": {"greeting": "hello"}}, "outputs": ["join"]},
                {"id": "shout", "type": "transform", "outputs": ["join"]},
                {"id": "join", "type": "transform"},
            ],
        }
    ],
}
