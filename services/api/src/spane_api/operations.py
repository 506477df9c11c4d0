"""What the OpenAPI document says beyond what Litestar derives from a handler: links and optional bodies.

Links tell how the answer of one operation feeds the next (a stored workflow -> its execution -> its reads); they
document the API's flow and let stateful testers (schemathesis) reach executions. Litestar's handlers have neither
a ``links`` option nor an optional request body (it marks every body required), so an ``Operation`` subclass,
named in a handler's ``operation_class``, adds them once the operation is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from litestar.openapi.spec import Link, Operation, RequestBody
from litestar.openapi.spec import OpenAPIResponse as ResponseObject

# The operation ids Litestar derives from the paths and handler names.
WORKFLOW_OPERATIONS = {
    "read": "ApiWorkflowsWorkflowIdReadWorkflow",
    "versions": "ApiWorkflowsWorkflowIdVersionsListVersions",
    "execute": "ApiWorkflowsWorkflowIdExecuteExecuteWorkflow",
    "delete": "ApiWorkflowsWorkflowIdDeleteWorkflow",
}
EXECUTION_OPERATIONS = {
    "read": "ApiExecutionsExecutionIdReadExecution",
    "history": "ApiExecutionsExecutionIdHistoryReadHistory",
    "pause": "ApiExecutionsExecutionIdPausePauseExecution",
    "resume": "ApiExecutionsExecutionIdResumeResumeExecution",
    "cancel": "ApiExecutionsExecutionIdCancelCancelExecution",
}


def _links(operations: Mapping[str, str], parameter: str, field: str) -> dict[str, Link]:
    return {
        name: Link(operation_id=operation_id, parameters={parameter: f"$response.body#/{field}"})
        for name, operation_id in operations.items()
    }


def operation(links: Mapping[str, dict[str, Link]] | None = None, *, optional_body: bool = False) -> type[Operation]:
    """An ``Operation`` class whose responses of the given statuses carry ``links``, and whose request body is
    optional when ``optional_body``."""

    @dataclass  # a generated __init__ that calls __post_init__ (Operation's own does not)
    class Described(Operation):
        def __post_init__(self) -> None:
            for status, extra in (links or {}).items():
                response = (self.responses or {}).get(status)
                if isinstance(response, ResponseObject):
                    response.links = {**(response.links or {}), **extra}
            if optional_body and isinstance(self.request_body, RequestBody):
                self.request_body.required = False

    return Described


WORKFLOW_LINKS = _links(WORKFLOW_OPERATIONS, "workflow_id", "workflowId")
EXECUTION_LINKS = _links(EXECUTION_OPERATIONS, "execution_id", "executionId")
SAVED_WORKFLOW = operation({"201": WORKFLOW_LINKS, "200": WORKFLOW_LINKS})
STARTED_EXECUTION = operation({"202": EXECUTION_LINKS}, optional_body=True)
