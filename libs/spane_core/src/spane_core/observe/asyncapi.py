"""The AsyncAPI document of the streams between SPANE's services, made from the types that travel on them.

The hot paths read and write these streams with redis-py directly (batched XREADGROUP, the Lua commit script), not
through FastStream, so the document is built here from the msgspec types themselves: it cannot drift from what
the services send. Every value is msgpack-encoded in one field of a stream entry.
"""

from __future__ import annotations

from typing import Any

import msgspec

from spane_core.effects import Task
from spane_core.events import Envelope
from spane_core.keys import PROJECTOR_GROUP, WORKER_GROUP
from spane_core.workflow_events import WorkflowEvent

MSGPACK = "application/msgpack"


def _operation(action: str, channel: str, summary: str) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}


OPERATIONS = {
    "runTask": _operation("receive", "tasks", "A worker takes a task (XREADGROUP) and commits its result."),
    "queueTask": _operation("send", "tasks", "A commit (commit.lua) queues the tasks its events ask for."),
    "projectCommit": _operation("receive", "commits", "The projector folds commits into the Postgres read models."),
    "appendCommit": _operation("send", "commits", "Every transition of an execution adds one entry (commit.lua)."),
    "fireTimer": _operation("receive", "timers", "The scheduler fires due timers."),
    "projectWorkflowEvent": _operation("receive", "workflowEvents", "The projector keeps the workflow tables."),
}


def asyncapi_document(version: str) -> dict[str, Any]:
    (task, commit, workflow_event), components = msgspec.json.schema_components(
        [Task, list[Envelope], WorkflowEvent], ref_template="#/components/schemas/{name}"
    )
    timer = {
        "type": "string",
        "description": "A sorted-set member `executionId|nodeId|attempt`, scored by its due time (epoch ms).",
        "examples": ["01JDX...|fetch|2"],
    }

    def channel(address: str, description: str, message: str) -> dict[str, Any]:
        return {"address": address, "description": description,
                "messages": {message: {"$ref": f"#/components/messages/{message}"}}}  # fmt: skip

    def message(name: str, field: str, schema: dict[str, Any], summary: str) -> dict[str, Any]:
        return {
            "name": name,
            "summary": summary,
            "contentType": MSGPACK,
            "payload": schema,
            "bindings": {"redis": {"field": field}},
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SPANE streams",
            "version": version,
            "description": "Redis Streams between the SPANE services. `{p}` is an execution's partition "
            "(SPANE_PARTITIONS); each entry holds one msgpack value in the named field.",
        },
        "servers": {"redis": {"host": "redis:6379", "protocol": "redis"}},
        "channels": {
            "tasks": channel(
                "spane:{p}:tasks",
                f"Node tasks, one per try, read by the consumer group `{WORKER_GROUP}`; added by the commit that "
                "queues the node, acknowledged and deleted by the commit that records its result. This is the "
                "stream of priority 5 (the default); an execution of priority n (1-10) has its tasks in "
                "`spane:{p}:tasks:p<n>`, and workers read the ten in weighted shares, higher first.",
                "task",
            ),
            "commits": channel(
                "spane:{p}:events",
                f"One entry per commit: the events it appended to an execution's log, in order; read by the "
                f"consumer group `{PROJECTOR_GROUP}` (the projector) and the API's live-event reader. The projector "
                "trims entries once every group acknowledged them and they are older than "
                "SPANE_EVENTS_RESUME_WINDOW_S (kept for /api/events clients that resume), and records the newest "
                "entry it removed in `spane:{p}:events:trimmed`.",
                "commit",
            ),
            "timers": channel(
                "spane:{p}:timers",
                "A sorted set of due times (retry backoff, delays), fired by the scheduler as FireTimer commands.",
                "timer",
            ),
            "workflowEvents": channel(
                "spane:{w}:events",
                f"The workflow registry's events (registered, deleted); read by `{PROJECTOR_GROUP}`.",
                "workflowEvent",
            ),
            "poison": channel(
                "spane:{p}:events:poison",
                "Commit entries the projector could not decode or fold, with their error (`spane projector poison`).",
                "commit",
            ),
        },
        "operations": OPERATIONS,
        "components": {
            "schemas": components,
            "messages": {
                "task": message("task", "t", task, "One try of one node (idempotency key executionId:nodeId:attempt)."),
                "commit": message("commit", "b", commit, "The envelopes of one commit (seq, at, type, payload)."),
                "timer": message("timer", "member", timer, "A due time of a node's try."),
                "workflowEvent": message("workflowEvent", "b", workflow_event, "A change of the workflow registry."),
            },
        },
    }
