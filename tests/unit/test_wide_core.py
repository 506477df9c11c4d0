"""Large graphs in the pure core: deciding on a result looks at the children of what changed (not at every node),
evolving in place never touches a state the caller keeps, and the outcome is the one the rules give."""

from __future__ import annotations

import copy
import random

import pytest
from spane_core import decide
from spane_core.commands import Complete, Context, Fail, Start
from spane_core.decide import decide_and_evolve
from spane_core.definition import build_graph
from spane_core.events import ErrorInfo, Event, ExecutionCompleted, NodeQueued, NodeSkipped
from spane_core.ids import ExecutionId, NodeId
from spane_core.settings import Settings
from spane_core.state import ExecutionStatus, NodeStatus, evolve, fold
from spane_core.validation import BUILTIN_NODE_TYPES, parse_definition

from .helpers import Driver, tags, workflow

WIDTH = 2_000


def fan_out(width: int) -> list[dict[str, object]]:
    branches = [f"b{i}" for i in range(width)]
    nodes: list[dict[str, object]] = [{"id": "start", "type": "transform", "outputs": branches}]
    nodes += [{"id": b, "type": "transform", "outputs": ["join"]} for b in branches]
    return [*nodes, {"id": "join", "type": "transform"}]


def test_a_wide_fan_out_queues_every_branch_then_the_join_once_all_are_done() -> None:
    d = Driver(workflow(fan_out(WIDTH)))
    d.send(Start(execution_id=ExecutionId("e1"), input=1))
    d.send(Complete(node_id=NodeId("start"), lease=d.start_node("start"), output=1))
    queued = [n for n, s in d.s.nodes.items() if s.status is NodeStatus.QUEUED]
    assert len(queued) == WIDTH
    for i in reversed(range(WIDTH)):  # in reverse: the join becomes ready on the last result only
        events = d.send(Complete(node_id=NodeId(f"b{i}"), lease=d.start_node(f"b{i}"), output=i))
        assert ("node.queued:join" in tags(events)) is (i == 0)
    output = {f"b{i}": i for i in range(WIDTH)}
    events = d.send(Complete(node_id=NodeId("join"), lease=d.start_node("join"), output=output))
    assert isinstance(events[-1], ExecutionCompleted)
    assert d.s.output == output
    assert fold(d.log) == d.s


def test_a_skip_reaches_the_nodes_after_it_through_a_chain() -> None:
    # a chooses c only: b is skipped, and so is everything downstream of b alone (b1 -> b2 -> b3); d joins c and b3.
    nodes: list[dict[str, object]] = [
        {"id": "a", "type": "condition", "outputs": ["b", "c"]},
        {"id": "b", "type": "transform", "outputs": ["b1"]},
        {"id": "b1", "type": "transform", "outputs": ["b2"]},
        {"id": "b2", "type": "transform", "outputs": ["b3"]},
        {"id": "b3", "type": "transform", "outputs": ["d"]},
        {"id": "c", "type": "transform", "outputs": ["d"]},
        {"id": "d", "type": "transform"},
    ]
    d = Driver(workflow(nodes))
    d.send(Start(execution_id=ExecutionId("e1"), input=1))
    events = d.send(Complete(node_id=NodeId("a"), lease=d.start_node("a"), output=1, next_nodes=[NodeId("c")]))
    assert [e.node_id for e in events if isinstance(e, NodeSkipped)] == ["b", "b1", "b2", "b3"]
    assert [e.node_id for e in events if isinstance(e, NodeQueued)] == ["c"]
    events = d.send(Complete(node_id=NodeId("c"), lease=d.start_node("c"), output=2))
    assert [e.node_id for e in events if isinstance(e, NodeQueued)] == ["d"]


def test_deciding_and_evolving_never_change_the_state_they_are_given() -> None:
    wf = workflow(fan_out(10))
    ctx = Context(now=5, lease="L")
    _, started = decide_and_evolve(None, wf, Start(execution_id=ExecutionId("e1"), input=1), ctx)
    assert started is not None
    kept = copy.deepcopy(started)
    _, after = decide_and_evolve(started, wf, Complete(node_id=NodeId("start"), lease="", output=1), ctx)
    events, after = decide_and_evolve(
        started, wf, Start(execution_id=ExecutionId("e1")), ctx
    )  # a no-op hands the same state back
    assert events == [] and after is started
    assert started == kept
    events_to_apply: list[Event] = [NodeQueued(node_id=NodeId("b1"), attempt=1), ExecutionCompleted(output=None)]
    for event in events_to_apply:
        evolved = evolve(started, event, 9)
        assert evolved is not started and started == kept
    assert evolved.status is ExecutionStatus.COMPLETED


def test_the_graph_of_a_wide_fan_out_lists_each_edge_once_whichever_side_names_it() -> None:
    nodes = fan_out(WIDTH)
    nodes[-1]["inputs"] = [f"b{i}" for i in range(WIDTH)]  # the join names the same edges again
    graph = build_graph(workflow(nodes).definition)
    assert len(graph.parents[NodeId("join")]) == WIDTH
    assert graph.position[NodeId("join")] == WIDTH + 1


def test_the_default_limits_take_a_ten_thousand_wide_fan_out() -> None:
    raw = {"id": "wide", "name": "wide", "nodes": fan_out(10_000)}
    definition = parse_definition(raw, BUILTIN_NODE_TYPES, Settings().definition_limits)
    assert len(definition.nodes) == 10_002


def _run_random(nodes: list[dict[str, object]], seed: int) -> list[str]:
    """Every event of one run of ``nodes``: results in a random order, random branch choices and failures."""
    rng = random.Random(seed)
    d = Driver(workflow(nodes))
    d.send(Start(execution_id=ExecutionId("e1"), input=0))
    log: list[str] = []
    while d.s.status is ExecutionStatus.RUNNING:
        queued = sorted(n for n, s in d.s.nodes.items() if s.status is NodeStatus.QUEUED)
        if not queued:
            break
        node = NodeId(rng.choice(queued))
        lease = d.start_node(node)
        children = list(d.wf.graph.children[node])
        if rng.random() < 0.15:
            events = d.send(Fail(node_id=node, lease=lease, error=ErrorInfo(message="x"), retryable=False))
        else:
            chosen = [c for c in children if rng.random() < 0.6] if children and rng.random() < 0.4 else None
            events = d.send(Complete(node_id=node, lease=lease, output=1, next_nodes=chosen))
        log += tags(events)
    return log


def test_looking_at_the_children_of_what_was_resolved_decides_as_a_scan_of_every_node_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for seed in range(150):
        rng = random.Random(seed)
        size = rng.randint(2, 30)
        nodes: list[dict[str, object]] = []
        for i in range(size):
            parents = [f"n{j}" for j in range(i) if rng.random() < 0.25] or ([f"n{rng.randrange(i)}"] if i else [])
            policy = {"maxAttempts": 1, "continueOnFail": rng.random() < 0.5}
            nodes.append({"id": f"n{i}", "type": "transform", "inputs": parents, "retryPolicy": policy})
        monkeypatch.setattr(decide, "SMALL_GRAPH", 10**9)  # every node, every time
        scanned = _run_random(nodes, seed)
        monkeypatch.setattr(decide, "SMALL_GRAPH", 0)  # the children of what was resolved only
        assert _run_random(nodes, seed) == scanned, seed
