"""spane.client without a server: the SSE wire format, and error answers turned into one readable ApiError."""

from __future__ import annotations

import json

import httpx
import pytest

from spane.client import ApiError, SpaneClient, Unreachable
from spane.sse import parse_sse


def test_sse_events_comments_and_multiline_data_are_parsed() -> None:
    lines = [
        ": heartbeat",
        "event: execution.state",
        'data: {"status": "running",',
        'data:  "nodes": {}}',
        "id: 3",
        "",
        'data: {"type": "node.completed", "nodeId": "a", "seq": 4}',
        "id: 4",
        "",
    ]
    events = list(parse_sse(lines))
    assert [(e.type, e.id) for e in events] == [("execution.state", "3"), ("node.completed", "4")]
    assert events[0].data == {"status": "running", "nodes": {}}
    assert events[1].data["nodeId"] == "a"


def test_a_422_carries_its_problems_with_their_paths() -> None:
    problem = {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "invalid workflow definition",
        "errors": [{"path": "nodes[0].type", "message": "unknown node type 'nope'"}],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t0k"
        return httpx.Response(422, json=problem)

    client = SpaneClient("http://spane.test", "t0k", transport=httpx.MockTransport(answer))
    with client, pytest.raises(ApiError) as refused:
        client.apply({"id": "x"})
    assert str(refused.value) == "422 Unprocessable Entity: invalid workflow definition"
    assert [(p.path, p.message) for p in refused.value.problems] == [("nodes[0].type", "unknown node type 'nope'")]


def test_apply_tells_a_new_version_from_an_unchanged_one() -> None:
    statuses = iter([201, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), json={"workflowId": "x", "version": 1})

    with SpaneClient("http://spane.test", transport=httpx.MockTransport(answer)) as client:
        assert client.apply({"id": "x"}).created is True
        assert client.apply({"id": "x"}).created is False


def test_an_execution_names_its_children_and_its_options() -> None:
    # A wait node in a sub-workflow takes signals at the child's id: the client dropped `children`, so a caller
    # of SpaneClient could not find it (nor the options GET /api/executions/{id} shows).
    view = {
        "executionId": "p1", "workflowId": "parent", "version": 1, "status": "running", "input": {}, "nodes": {},
        "children": {"sub": ["c1"]}, "priority": 8, "runAt": None, "deadline": "2030-01-01T00:00:00.000Z",
        "rerunOf": "p0",
    }  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=view)

    with SpaneClient("http://spane.test", transport=httpx.MockTransport(answer)) as client:
        execution = client.execution("p1")
    assert execution.children == {"sub": ["c1"]}
    assert (execution.priority, execution.deadline, execution.rerun_of) == (8, "2030-01-01T00:00:00.000Z", "p0")


def test_run_asks_again_when_the_server_restarts_while_it_holds_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API restarted (a deploy, a crash) while it held run()'s call: the execution goes on, and asking again
    # with the same idempotency key is safe, so run() does that instead of failing.
    monkeypatch.setattr("spane.client.UNREACHABLE_PAUSE_S", 0.0)
    answers = iter(["drop", "refuse", "done"])
    keys = []
    finished = {"executionId": "e1", "workflowId": "w", "version": 1, "status": "completed", "output": 3}

    def answer(request: httpx.Request) -> httpx.Response:
        keys.append(json.loads(request.content)["idempotencyKey"])
        match next(answers):
            case "drop":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            case "refuse":
                raise httpx.ConnectError("Connection refused")
        return httpx.Response(200, json=finished)

    with SpaneClient("http://spane.test", transport=httpx.MockTransport(answer)) as client:
        assert client.run("w", {}).output == 3
    assert len(keys) == 3 and len(set(keys)) == 1


def test_run_gives_up_on_a_server_that_stays_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("spane.client.UNREACHABLE_PAUSE_S", 0.0)
    monkeypatch.setattr("spane.client.UNREACHABLE_TRIES", 3)
    calls: list[httpx.Request | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out")
        raise httpx.ConnectError("Connection refused")

    with SpaneClient("http://spane.test", transport=httpx.MockTransport(answer)) as client, pytest.raises(Unreachable):
        client.run("w", {})
    assert len(calls) == 3
    # A server not there at the first call (a wrong URL): nothing started, no reason to wait for it.
    calls.clear()
    calls.append(None)  # so that the first call is refused
    with SpaneClient("http://spane.test", transport=httpx.MockTransport(answer)) as client, pytest.raises(Unreachable):
        client.run("w", {})
    assert len(calls) == 2
