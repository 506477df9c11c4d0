"""Random DAGs, run to the end in random orders with random branch choices, failures and reclaims, reach the
same final state live and when their log is replayed; and every node ends resolved exactly as the rules say."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spane_core.commands import (
    ChildFinished,
    Complete,
    Defer,
    DeleteDeadLetter,
    Fail,
    FireTimer,
    Pause,
    Resume,
    RetryDeadLetter,
    Start,
)
from spane_core.events import ErrorInfo, NodeCompleted
from spane_core.ids import ExecutionId, NodeId
from spane_core.state import ExecutionStatus, NodeStatus, fold

from .helpers import Driver, workflow


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(min_value=1, max_value=10))
    nodes = []
    for i in range(size):
        parents = [f"n{j}" for j in range(i) if draw(st.booleans())] if i else []
        retry = {
            "maxAttempts": 2,
            "backoff": {"type": "fixed", "delay": 10},
            "continueOnFail": draw(st.booleans()),
        }
        kind = draw(st.sampled_from(["transform", "transform", "sub-workflow"]))
        config = {"workflowId": "child"} if kind == "sub-workflow" else {}
        nodes.append({"id": f"n{i}", "type": kind, "config": config, "inputs": parents, "retryPolicy": retry})
    return nodes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=dags(), data=st.data())
def test_live_state_equals_replayed_state(nodes: list[dict[str, Any]], data: st.DataObject) -> None:
    wf = workflow(nodes)
    d = Driver(wf)
    d.send(Start(execution_id=ExecutionId("e1"), input={"seed": 1}))
    running: dict[NodeId, str] = {}
    for _ in range(500):
        s = d.s
        dead = [n for n, ns in s.nodes.items() if ns.status is NodeStatus.DEAD_LETTERED and not ns.dead_letter_deleted]
        if s.status is ExecutionStatus.FAILED and dead:  # a person retries or deletes a dead letter
            letter = data.draw(st.sampled_from(dead))
            d.now += 20
            attempt = s.node(letter).attempt
            if data.draw(st.integers(0, 3)) == 0:
                d.send(DeleteDeadLetter(node_id=letter, attempt=attempt))
            else:
                d.send(RetryDeadLetter(node_id=letter, attempt=attempt))
            continue
        if s.status is not ExecutionStatus.RUNNING and s.status is not ExecutionStatus.PAUSED:
            break
        queued = [n for n, ns in s.nodes.items() if ns.status is NodeStatus.QUEUED]
        retrying = [n for n, ns in s.nodes.items() if ns.status is NodeStatus.RETRYING or ns.deferred is not None]
        waiting = [n for n, ns in s.nodes.items() if ns.status is NodeStatus.WAITING and ns.child_execution_id]
        choices: list[tuple[str, NodeId | None]] = [("start", n) for n in queued]
        choices += [("defer", n) for n in queued]
        choices += [("finish", n) for n in running]
        choices += [("timer", n) for n in retrying] + [("pause", None)] + [("child", n) for n in waiting]
        if not choices:
            break
        action, node = data.draw(st.sampled_from(choices))
        d.now += 20
        if action == "pause":
            d.send(Pause() if s.status is ExecutionStatus.RUNNING else Resume())
        elif action == "start" and node is not None:
            stale = running.get(node)
            running[node] = d.start_node(node)
            if stale is not None and stale != running[node]:
                assert d.send(Complete(node_id=node, lease=stale, output="stale")) == []
        elif action == "defer" and node is not None:
            attempt = s.node(node).attempt
            d.send(Defer(node_id=node, queued_seq=s.node(node).queued_seq, reason="rate-limit", until=d.now + 5))
            assert d.s.node(node).attempt == attempt, "a deferral spent an attempt"
        elif action == "child" and node is not None:
            child = s.node(node).child_execution_id
            assert child is not None
            if data.draw(st.integers(0, 3)) == 0:
                d.send(ChildFinished(node, child, completed=False, error=ErrorInfo(message="child failed")))
            else:
                d.send(ChildFinished(node, child, completed=True, output={"child": node}))
        elif action == "timer" and node is not None:
            d.send(FireTimer(node_id=node, attempt=s.node(node).attempt))
        elif action == "finish" and node is not None:
            lease = running.pop(node)
            if data.draw(st.integers(0, 4)) == 0:
                d.send(Fail(node_id=node, lease=lease, error=ErrorInfo(message="flaky")))
            else:
                children = list(wf.graph.children[node])
                chosen = data.draw(st.none() | st.lists(st.sampled_from(children), unique=True)) if children else None
                d.send(Complete(node_id=node, lease=lease, output={"from": node}, next_nodes=chosen))
        if d.s.status is ExecutionStatus.PAUSED and not running and data.draw(st.booleans()):
            d.send(Resume())

    assert fold(d.log) == d.state
    final = d.s
    assert [e.seq for e in d.log] == list(range(1, len(d.log) + 1))
    completions = [e.event.node_id for e in d.log if isinstance(e.event, NodeCompleted)]
    assert len(completions) == len(set(completions)), "a node was recorded as completed twice"
    if final.status is ExecutionStatus.COMPLETED:
        for node_id in wf.graph.nodes:
            status = final.node(node_id).status
            assert status in (NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED)
            parents = wf.graph.parents[node_id]
            taken = [
                p for p in parents
                if final.node(p).status is not NodeStatus.SKIPPED
                and (final.node(p).next_nodes is None or node_id in (final.node(p).next_nodes or []))
            ]  # fmt: skip
            assert (status is NodeStatus.SKIPPED) == (bool(parents) and not taken)
