"""A small typed client of the SPANE HTTP API, for programs and for the ``spane`` command line.

    from spane.client import SpaneClient

    with SpaneClient.from_env() as spane:            # SPANE_URL (default http://127.0.0.1:8000), SPANE_API_TOKEN
        spane.apply({"id": "hi", "name": "Hi", "nodes": [{"id": "a", "type": "transform"}]})
        started = spane.start("hi", {"name": "ada"})
        print(spane.wait(started.execution_id).output)

Every failure is a ``ClientError`` (a ``SpaneError``): ``ApiError`` carries the problem details of a 4xx/5xx answer,
``Unreachable`` says the server did not answer.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import msgspec
from spane_core.errors import FieldError, SpaneError

from spane.client_models import (
    FINAL_STATUSES,
    Applied,
    Breaker,
    Bucket,
    CommandAccepted,
    DeadLetterPage,
    Execution,
    ExecutionPage,
    Rerun,
    Schedule,
    ServerEvent,
    Started,
    VersionInfo,
    WorkflowSummary,
    WorkflowVersion,
)
from spane.sse import follow_history, parse_sse

DEFAULT_URL = "http://127.0.0.1:8000"
RUN_WAIT_S = 60.0  # how long one call of run() asks the server to hold it (waitMs)
# run() asks again this many times, this far apart, when the server went away while it held the call.
UNREACHABLE_TRIES = 10
UNREACHABLE_PAUSE_S = 2.0
UNSET: Any = msgspec.UNSET


class ClientError(SpaneError):
    """The API refused a call or could not be reached."""


class Unreachable(ClientError):
    """No answer from the server (refused, timed out, DNS)."""


class ApiError(ClientError):
    """An error answer; ``problems`` lists the field errors of a 422 (each with its ``path``)."""

    def __init__(self, status: int, title: str, detail: str, problems: list[FieldError]) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail and detail != title else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.problems = problems


def _api_error(response: httpx.Response) -> ApiError:
    title, detail, problems = response.reason_phrase or "Error", "", []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                problems.append(FieldError(str(item.get("path", "")), str(item.get("message", ""))))
    return ApiError(response.status_code, title, detail, problems)


class SpaneClient:
    """A synchronous client over one ``httpx.Client``; use it as a context manager or call ``close()``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None) -> SpaneClient:
        """The server named by ``SPANE_URL`` and ``SPANE_API_TOKEN`` (arguments given win)."""
        return cls(url or os.environ.get("SPANE_URL") or DEFAULT_URL, token or os.environ.get("SPANE_API_TOKEN"))

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json: Any = UNSET, params: dict[str, Any] | None = None) -> Any:
        response = self._request(method, path, json=json, params=params)
        return None if response.status_code == 204 or not response.content else response.json()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = UNSET,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            if json is UNSET:
                response = self._http.request(method, path, params=query, **extra)
            else:
                response = self._http.request(method, path, params=query, json=json, **extra)
        except httpx.HTTPError as e:
            raise Unreachable(f"no answer from {self.url}: {e}") from e
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    # Workflows

    def apply(self, definition: dict[str, Any]) -> Applied:
        """Store a definition: a new version (``created``), or the latest one when identical to it."""
        response = self._request("POST", "/api/workflows", json=definition)
        body = response.json()
        return Applied(workflow_id=body["workflowId"], version=body["version"], created=response.status_code == 201)

    def workflows(self) -> list[WorkflowSummary]:
        return msgspec.convert(self._call("GET", "/api/workflows")["items"], list[WorkflowSummary])

    def workflow(self, workflow_id: str, version: int | None = None) -> WorkflowVersion:
        body = self._call("GET", f"/api/workflows/{workflow_id}", params={"version": version})
        return msgspec.convert(body, WorkflowVersion)

    def versions(self, workflow_id: str) -> list[VersionInfo]:
        body = self._call("GET", f"/api/workflows/{workflow_id}/versions")
        return msgspec.convert(body["items"], list[VersionInfo])

    def delete_workflow(self, workflow_id: str) -> None:
        self._call("DELETE", f"/api/workflows/{workflow_id}")

    # Executions

    def start(
        self, workflow_id: str, input: Any = None, *, version: int | None = None, idempotency_key: str | None = None
    ) -> Started:
        request: dict[str, Any] = {"input": input}
        if version is not None:
            request["version"] = version
        if idempotency_key is not None:
            request["idempotencyKey"] = idempotency_key
        return msgspec.convert(self._call("POST", f"/api/workflows/{workflow_id}/execute", json=request), Started)

    def run(
        self,
        workflow_id: str,
        input: Any = None,
        *,
        timeout: float | None = None,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Start an execution and return it once it has finished, as a function call would (its ``status`` says
        how it ended). The server holds each call until the end, up to a minute at a time (``waitMs``); the calls
        after the first ask again with the same idempotency key, also after the server went away meanwhile (for up
        to ``UNREACHABLE_TRIES`` tries). ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        request: dict[str, Any] = {"input": input, "idempotencyKey": idempotency_key or f"run-{uuid.uuid4()}"}
        if version is not None:
            request["version"] = version
        path = f"/api/workflows/{workflow_id}/execute"
        sent = False
        failures = 0
        while True:
            left = RUN_WAIT_S if deadline is None else min(RUN_WAIT_S, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(
                    f"execution of {workflow_id} ({request['idempotencyKey']}) not finished in {timeout} s"
                )
            request["waitMs"] = max(1, int(left * 1000))
            try:
                response = self._request("POST", path, json=request, timeout=left + 30)
            except Unreachable as e:
                # The server went away while it held the call (a restart): the execution goes on, and asking
                # again with the same key is safe. Refused at the first call, nothing started: no waiting then.
                failures += 1
                if failures >= UNREACHABLE_TRIES or (not sent and isinstance(e.__cause__, httpx.ConnectError)):
                    raise
                sent = True
                time.sleep(UNREACHABLE_PAUSE_S)
                continue
            sent, failures = True, 0
            if response.status_code == 200:
                return msgspec.convert(response.json(), Execution)

    def rerun(
        self, execution_id: str, *, from_node: str | None = None, input: Any = UNSET, version: int | None = None
    ) -> Rerun:
        """Run an execution again (with its input and version unless given); with ``from_node``, the nodes not
        downstream of it keep their recorded outputs."""
        request: dict[str, Any] = {}
        if from_node is not None:
            request["fromNode"] = from_node
        if input is not UNSET:
            request["input"] = input
        if version is not None:
            request["version"] = version
        return msgspec.convert(self._call("POST", f"/api/executions/{execution_id}/rerun", json=request), Rerun)

    def executions(
        self, *, workflow_id: str | None = None, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> ExecutionPage:
        params = {"workflowId": workflow_id, "status": status, "limit": limit, "cursor": cursor}
        return msgspec.convert(self._call("GET", "/api/executions", params=params), ExecutionPage)

    def execution(self, execution_id: str) -> Execution:
        return msgspec.convert(self._call("GET", f"/api/executions/{execution_id}"), Execution)

    def history(self, execution_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._call("GET", f"/api/executions/{execution_id}/history")["events"]
        return events

    def pause(self, execution_id: str) -> CommandAccepted:
        return self._command(execution_id, "pause")

    def resume(self, execution_id: str) -> CommandAccepted:
        return self._command(execution_id, "resume")

    def cancel(self, execution_id: str) -> CommandAccepted:
        return self._command(execution_id, "cancel")

    def signal(self, execution_id: str, name: str, data: Any = None) -> CommandAccepted:
        """Send the signal ``name``: the execution's ``wait`` nodes waiting for it complete with ``data``."""
        path = f"/api/executions/{execution_id}/signals/{quote(name, safe='')}"
        return msgspec.convert(self._call("POST", path, json=data), CommandAccepted)

    def _command(self, execution_id: str, name: str) -> CommandAccepted:
        return msgspec.convert(self._call("POST", f"/api/executions/{execution_id}/{name}"), CommandAccepted)

    def wait(self, execution_id: str, timeout: float | None = None, poll_s: float = 0.2) -> Execution:
        """Poll until the execution is completed, failed or cancelled; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (execution := self.execution(execution_id)).status not in FINAL_STATUSES:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} is still {execution.status} after {timeout} s")
            time.sleep(poll_s)
        return execution

    def events(self, execution_id: str, last_event_id: str | None = None) -> Iterator[ServerEvent]:
        """The execution's live events over SSE (``execution.state`` first); ends after its final event.

        With ``last_event_id`` (a seq) it resumes after that event, without the snapshot: ``"0"`` gives the whole
        log from its first event, then what follows live.

        Where the server has no SSE route (404 while the execution exists), the history is polled instead and its
        new events are yielded in the same form, so callers see the same stream either way.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        path = f"/api/executions/{execution_id}/events"
        try:
            with self._http.stream("GET", path, headers=headers, timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code == 404:
                    self.execution(execution_id)  # an unknown execution raises its own 404 here
                elif response.status_code >= 400:
                    response.read()
                    raise _api_error(response)
                else:
                    yield from parse_sse(response.iter_lines())
                    return
        except httpx.HTTPError as e:
            raise Unreachable(f"no answer from {self.url}: {e}") from e
        yield from follow_history(self, execution_id, last_event_id)

    # Dead letters

    def dead_letters(
        self,
        *,
        workflow_id: str | None = None,
        execution_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeadLetterPage:
        params = {"workflowId": workflow_id, "executionId": execution_id, "limit": limit, "cursor": cursor}
        return msgspec.convert(self._call("GET", "/api/dlq", params=params), DeadLetterPage)

    def retry_dead_letter(self, dead_letter_id: str, input: Any = UNSET) -> None:
        """Run the node again (with ``input`` in place of its recorded one when given) and revive its execution."""
        self._call("POST", f"/api/dlq/{dead_letter_id}/retry", json={} if input is UNSET else {"input": input})

    def delete_dead_letter(self, dead_letter_id: str) -> None:
        self._call("DELETE", f"/api/dlq/{dead_letter_id}")

    # Operations

    def breakers(self) -> list[Breaker]:
        return msgspec.convert(self._call("GET", "/api/circuit-breakers")["items"], list[Breaker])

    def reset_breaker(self, name: str) -> None:
        """Close a circuit breaker; the nodes it deferred run at once."""
        self._call("POST", f"/api/circuit-breakers/{quote(name, safe='')}/reset")

    def rate_limits(self) -> list[Bucket]:
        return msgspec.convert(self._call("GET", "/api/rate-limits")["items"], list[Bucket])

    def schedules(self) -> list[Schedule]:
        return msgspec.convert(self._call("GET", "/api/schedules")["items"], list[Schedule])
