"""Server-sent events: one execution's events (``/api/executions/{id}/events``) or everyone's (``/api/events``).

An execution's stream begins with ``execution.state`` (its current snapshot, ``id:`` its log position), then sends
each event as it is committed, ``id:`` being the event's ``seq``; it ends after the execution's final event. A
client that reconnects with ``Last-Event-ID: n`` gets the events after ``n`` from the log, then live ones: nothing
lost, nothing repeated. Live events come from the process's one reader (``spane_api.live``); the log fills any gap
(a client that fell behind, a commit the reader missed), so the stream is exactly the log.

The all-events stream's ``id:`` is a position in the commit streams; a client that reconnects with it is replayed
what they still hold after it (``spane_api.resume``): everything within the resume window, else an ``event: gap``
per partition that may have lost some, then what is held, then live events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_204_NO_CONTENT
from spane_core.codec import envelope_to_dict, iso_ms, to_json
from spane_core.errors import MalformedInput, NotFound
from spane_core.events import Envelope

from spane_api import readmodel
from spane_api.cursor import Cursor, Sent, event_id
from spane_api.deps import Dependencies, Deps
from spane_api.live import Subscription
from spane_api.problems import problem_responses
from spane_api.resume import GAP_EVENT, Gap, replay
from spane_api.routes.executions import execution_view
from spane_api.views import execution_from_snapshot, with_payloads

HEARTBEAT_S = 15.0
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})
FINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _message(event: dict[str, Any], event_id: str | int) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=to_json(event).decode(), event=str(event["type"]), id=event_id)


_HEARTBEAT = ServerSentEventMessage(data=None, comment="keep-alive")
_CONNECTED = ServerSentEventMessage(data=None, comment="connected")


def _last_event_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("last-event-id")
    return value.strip() if value and value.strip() else None


@get(
    "/{execution_id:str}/events",
    summary="Follow an execution live (SSE): its snapshot, then each event; resumes after `Last-Event-ID`",
    responses=problem_responses(400, 404),
)
async def execution_events(execution_id: FromPath[str], deps: Deps, request: Request[Any, Any, Any]) -> Response[Any]:
    last = _last_event_id(request)
    after: int | None = None
    if last is not None:
        if not last.isdigit():
            raise MalformedInput(f"Last-Event-ID must be an event's seq (a whole number), got {last!r}")
        after = int(last)
    view = await execution_view(deps, execution_id)  # 404 before the stream opens
    if after is not None and view.status in FINISHED_STATUSES and not await _log_after(deps, execution_id, after):
        # Nothing will ever follow: 204 tells an EventSource to stop reconnecting.
        return Response(content=None, status_code=HTTP_204_NO_CONTENT)
    return ServerSentEvent(_execution_stream(deps, execution_id, after), headers=SSE_HEADERS)


async def _execution_stream(deps: Dependencies, execution_id: str, after: int | None) -> AsyncIterator[Any]:
    async with deps.hub.subscribe(Subscription(execution_id=execution_id)) as subscription:
        if after is None:
            snapshot, last = await _snapshot(deps, execution_id)
            yield _message(snapshot, last)
            if snapshot["status"] in FINISHED_STATUSES:
                return
        else:
            last = after
        events = await _log_after(deps, execution_id, last)
        while True:
            for event in events:
                yield _message(event, event["seq"])
                last = event["seq"]
                if event["type"] in FINAL_EVENTS:
                    return
            items = await subscription.take(HEARTBEAT_S)
            if deps.hub.stopping.is_set():
                return  # the server stops: the client resumes with Last-Event-ID
            if subscription.dropped:  # it fell behind: the log has what the buffer dropped
                subscription.dropped = False
                events = await _log_after(deps, execution_id, last)
            elif not items:
                yield _HEARTBEAT
                events = await _log_after(deps, execution_id, last) if await _moved(deps, execution_id, last) else []
            else:
                events = await _live(deps, execution_id, last, [e for _, e in items])


async def _live(deps: Dependencies, execution_id: str, last: int, envelopes: list[Envelope]) -> list[dict[str, Any]]:
    """The live envelopes after ``last`` when they follow on from it; else (a gap) the log after ``last``."""
    fresh = sorted((e for e in envelopes if e.seq > last), key=lambda e: e.seq)
    if any(e.seq != last + 1 + i for i, e in enumerate(fresh)):
        return await _log_after(deps, execution_id, last)
    return await deps.payloads.resolve_many([envelope_to_dict(e) for e in fresh])


async def _moved(deps: Dependencies, execution_id: str, last: int) -> bool:
    seq = await deps.redis.hget(deps.executions.keys(execution_id).snapshot(execution_id), "v")
    return seq is not None and int(seq) > last


async def _snapshot(deps: Dependencies, execution_id: str) -> tuple[dict[str, Any], int]:
    state = await deps.executions.load(execution_id)
    if state is not None:
        view, seq = execution_from_snapshot(state), state.seq
    else:
        found = await readmodel.execution(deps.db, execution_id)
        if found is None:
            raise NotFound(f"execution {execution_id!r} not found")
        view, seq = found
    snapshot: dict[str, Any] = msgspec.to_builtins(await with_payloads(deps.payloads, view))
    return {"type": "execution.state", "seq": seq, "at": iso_ms(int(time.time() * 1000)), **snapshot}, seq


async def _log_after(deps: Dependencies, execution_id: str, seq: int) -> list[dict[str, Any]]:
    """The execution's events after ``seq``, from Redis or, once it let them go, from the archive."""
    envelopes = await deps.executions.read_log(execution_id, seq)
    if envelopes:
        events = [envelope_to_dict(e) for e in envelopes]
    elif await deps.redis.exists(deps.executions.keys(execution_id).snapshot(execution_id)):
        return []
    else:
        events = [e for e in await readmodel.archived_events(deps.db, execution_id) if e["seq"] > seq]
    return await deps.payloads.resolve_many(events)


@get(
    "/",
    summary="Follow every execution's events live (SSE), filtered; resumes after `Last-Event-ID`",
    description=(
        "Each message's `event:` is the event type (those of the history) and `id:` its position in the commit"
        " streams (`<partition>-<ms>-<n>-<index>`; with several partitions, then `~` and where each other partition"
        " stands, so that a resume takes each up where it was). A client that reconnects with `Last-Event-ID` gets"
        " the events"
        " after it, nothing lost or repeated, while it is within `SPANE_EVENTS_RESUME_WINDOW_S` (60 s by default)."
        " Past that, the events of a partition may be gone: the stream then sends, for each such partition,"
        ' `event: gap` with `data: {"type": "gap", "partition", "lastEventId", "oldestEventId",'
        ' "message"}` (and no `id:`), then the events still held and live ones; the client should reload the'
        " state it shows (`GET /api/executions`)."
    ),
    responses=problem_responses(400),
)
async def all_events(
    deps: Deps,
    request: Request[Any, Any, Any],
    workflow_id: Annotated[str | None, QueryParameter(name="workflowId")] = None,
    execution_id: Annotated[str | None, QueryParameter(name="executionId")] = None,
) -> ServerSentEvent:
    last = _last_event_id(request)
    resume = None if last is None else Cursor.parse(last, len(deps.hub.streams))
    if last is not None and resume is None:
        raise MalformedInput(f"Last-Event-ID {last!r} is not an id this stream sent")
    subscription = Subscription(execution_id=execution_id or None, workflow_id=workflow_id or None)
    return ServerSentEvent(_all_stream(deps, subscription, resume), headers=SSE_HEADERS)


async def _all_stream(deps: Dependencies, subscription: Subscription, resume: Cursor | None) -> AsyncIterator[Any]:
    partitions = len(deps.hub.streams)
    async with deps.hub.subscribe(subscription):
        yield _CONNECTED  # the client knows that everything committed from now on will reach it
        # The last position sent, per partition (a resume's, to begin with): replayed and live events overlap, and
        # each is sent once; every id carries them all (``cursor``).
        sent: Sent = {} if resume is None else dict(resume.sent)
        if resume is not None:
            async for item in replay(deps.redis, len(deps.hub.streams), subscription, resume):
                if isinstance(item, Gap):
                    # No ``id:``: a client reconnecting before the next event resumes where it asked to, gap included.
                    yield ServerSentEventMessage(data=to_json(item.to_dict()).decode(), event=GAP_EVENT)
                    continue
                position, envelope = item
                sent[position.partition] = (position.entry, position.index)
                event = (await deps.payloads.resolve_many([envelope_to_dict(envelope)]))[0]
                yield _message(event, event_id(position, sent, partitions))
        while True:
            items = await subscription.take(HEARTBEAT_S)
            if subscription.dropped or deps.hub.stopping.is_set():
                # Too slow, or the server stops: the client reconnects with Last-Event-ID and catches up.
                return
            if not items:
                yield _HEARTBEAT
                continue
            fresh = []
            for position, envelope in items:  # one by one: an entry may come twice in one batch, too
                if (position.entry, position.index) > sent.get(position.partition, ((0, 0), -1)):
                    sent[position.partition] = (position.entry, position.index)
                    fresh.append((position, event_id(position, sent, partitions), envelope))
            events = await deps.payloads.resolve_many([envelope_to_dict(e) for _, _, e in fresh])
            for (_, message_id, _), event in zip(fresh, events, strict=True):
                yield _message(event, message_id)


EXECUTION_HANDLERS = [execution_events]
HANDLERS = [all_events]
