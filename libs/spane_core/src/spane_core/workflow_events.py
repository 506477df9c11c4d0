"""Events of the workflow registry (definitions and their versions), folded by the projector into Postgres."""

from __future__ import annotations

from typing import Any

import msgspec

from spane_core.ids import WorkflowId


class WorkflowRegistered(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="workflow.registered", rename="camel"
):
    workflow_id: WorkflowId
    version: int
    name: str
    definition: dict[str, Any]  # the canonical definition, camelCase JSON shape
    at: int  # epoch ms


class WorkflowDeleted(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="workflow.deleted", rename="camel"
):
    workflow_id: WorkflowId
    at: int


WorkflowEvent = WorkflowRegistered | WorkflowDeleted
