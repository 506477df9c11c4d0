"""Parts of the definition format (API.md) that this version validates but does not run yet.

A definition that needs one is refused at registration with a 422 naming it, rather than accepted and then failed
at run time (sub-workflow nodes). The feature that builds one deletes its check here.
"""

from __future__ import annotations

from spane_core.definition import WorkflowDefinition
from spane_core.errors import FieldError, InvalidInput

NOT_YET = "is not supported yet by this version of SPANE"


def check_buildable(definition: WorkflowDefinition) -> None:
    """Raise ``InvalidInput`` (422) naming each part of ``definition`` that this version cannot run yet."""
    if errors := not_built(definition):
        raise InvalidInput("the definition needs features that are not built yet", errors)


def not_built(definition: WorkflowDefinition) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, node in enumerate(definition.nodes):
        if node.type == "sub-workflow":
            errors.append(FieldError(f"nodes[{i}].type", f"the sub-workflow node type {NOT_YET}"))
    return errors
