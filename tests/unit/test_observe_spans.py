"""Spans made from the log: one tree per execution, whatever batches the projector reads the log in."""

from __future__ import annotations

from spane_core.observe import context
from spane_core.observe.spans import SpanRecord, spans_for, timeline
from spane_core.state import fold

from tests.unit.observe_support import diamond_with_retry


def _tree(spans: list[SpanRecord]) -> None:
    """Every span of ``spans`` hangs, through its parents, from the one root span, all in one trace."""
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "span ids are unique"
    roots = [s for s in spans if s.kind == "execution"]
    assert len(roots) == 1 and roots[0].parent_id is None
    assert {s.trace_id for s in spans} == {roots[0].trace_id}
    for s in spans:
        if s.kind == "node":
            assert s.parent_id == roots[0].span_id


def test_context_ids_derive_from_names() -> None:
    own = context.parse(context.start_context("e1"))
    assert own == context.TraceContext(context.trace_id_of("e1"), context.root_span_id("e1"))
    assert context.root_parent("e1", context.start_context("e1")) is None
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert context.root_parent("e1", context.start_context("e1", caller)) == 0xB7AD6B7169203331
    assert context.start_context("e1", "garbage") == context.start_context("e1")
    child = context.parse(context.child_context(context.start_context("p"), "p", "sub", 2))
    assert child == context.TraceContext(context.trace_id_of("p"), context.node_span_id("p", "sub", 2))
    node = context.parse(context.node_traceparent(context.start_context("e1"), "e1", "a", 1))
    assert node == context.TraceContext(context.trace_id_of("e1"), context.node_span_id("e1", "a", 1))
    assert context.node_traceparent(None, "e1", "a", 1) is None


def test_a_run_makes_one_tree_timed_by_its_events() -> None:
    log = diamond_with_retry()
    spans = spans_for(None, log)
    _tree(spans)
    nodes = [(s.node_id, s.attempt, s.status) for s in spans if s.kind == "node"]
    assert sorted(nodes) == [
        ("a", 1, "retrying"), ("a", 2, "completed"), ("b", 1, "completed"), ("join", 1, "completed"),
        ("start", 1, "completed"),
    ]  # fmt: skip
    root = next(s for s in spans if s.kind == "execution")
    assert (root.start, root.end, root.status) == (log[0].at, log[-1].at, "completed")
    failed = next(s for s in spans if s.node_id == "a" and s.attempt == 1)
    assert failed.duration_ms == 7 and failed.error is not None and failed.error.type == "HttpStatusError"
    assert next(s for s in spans if s.node_id == "a" and s.attempt == 2).duration_ms == 11


def test_batches_make_the_same_spans_as_the_whole_log() -> None:
    """The projector folds the log in batches of any size: each cut gives the same spans, from the state before."""
    log = diamond_with_retry()
    whole = _key(spans_for(None, log))
    for cut in range(1, len(log)):
        before = fold(log[:cut])
        parts = spans_for(None, log[:cut]) + spans_for(before, log[cut:])
        assert _key(parts) == whole, cut


def test_an_untraced_log_still_names_one_tree() -> None:
    spans = spans_for(None, diamond_with_retry(traced=False))
    _tree(spans)
    assert spans[0].trace_id == context.trace_id_of("e1")


def test_timeline_shows_open_attempts() -> None:
    log = diamond_with_retry()
    first_start = next(i for i, e in enumerate(log) if e.type == "node.started")
    records = timeline(log[: first_start + 1])
    assert [(r.kind, r.node_id, r.status, r.end) for r in records] == [
        ("execution", None, "running", None),
        ("node", "start", "running", None),
    ]


def _key(spans: list[SpanRecord]) -> list[tuple[object, ...]]:
    return sorted((s.span_id, s.parent_id, s.trace_id, s.start, s.end, s.status) for s in spans)
