"""A trigger's ``secret`` never leaves SPANE: reads show ``"***"``, and a definition sent back with ``"***"`` keeps
the secret its workflow's latest version has on that webhook path (so a definition read, edited and posted again
does not lose, nor need to repeat, its secrets)."""

from __future__ import annotations

from typing import Any

import msgspec

from spane_core.definition import TriggerDef, WorkflowDefinition
from spane_core.errors import FieldError, InvalidInput
from spane_core.store.workflows import WorkflowRegistry, normalize_path

MASK = "***"


def masked_triggers(triggers: list[Any]) -> list[Any]:
    """Triggers as the API shows them: every ``config.secret`` replaced by ``"***"``."""
    out = []
    for trigger in triggers:
        config = trigger.get("config") if isinstance(trigger, dict) else None
        if isinstance(config, dict) and "secret" in config:
            trigger = {**trigger, "config": {**config, "secret": MASK}}
        out.append(trigger)
    return out


def masked_definition(definition: dict[str, Any]) -> dict[str, Any]:
    triggers = definition.get("triggers")
    return {**definition, "triggers": masked_triggers(triggers)} if isinstance(triggers, list) else definition


async def keep_stored_secrets(workflows: WorkflowRegistry, definition: WorkflowDefinition) -> WorkflowDefinition:
    """``definition`` with each ``"***"`` secret replaced by the stored one; ``InvalidInput`` when there is none."""
    if not any(t.config.get("secret") == MASK for t in definition.triggers):
        return definition
    latest = await workflows.latest_version(definition.id)
    stored: dict[str, str] = {}
    if latest is not None:
        for trigger in (await workflows.get(definition.id, latest)).definition.triggers:
            secret = trigger.config.get("secret")
            if trigger.type == "webhook" and secret:
                stored.setdefault(_path(trigger), str(secret))
    triggers, errors = [], []
    for i, trigger in enumerate(definition.triggers):
        if trigger.config.get("secret") == MASK:
            secret = stored.get(_path(trigger))
            if secret is None:
                message = f"'{MASK}' keeps a stored secret, but the latest version has none on this webhook path"
                errors.append(FieldError(f"triggers[{i}].config.secret", message))
                continue
            trigger = TriggerDef(type=trigger.type, config={**trigger.config, "secret": secret})
        triggers.append(trigger)
    if errors:
        raise InvalidInput("the definition is invalid", errors)
    return msgspec.structs.replace(definition, triggers=triggers)


def _path(trigger: TriggerDef) -> str:
    return normalize_path(str(trigger.config.get("path", "")))
