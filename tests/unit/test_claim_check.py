"""The claim check's pure parts: what a reference is, when a value is stored aside, and putting values back."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from spane_core.claim_check import (
    REF_KEY,
    canonical_json,
    offload,
    payload_id,
    reference,
    reference_id,
    references_in,
    substitute,
)
from spane_core.commands import Complete, Start
from spane_core.effects import effects
from spane_core.ids import ExecutionId, NodeId
from spane_core.store.payloads import PayloadCache

from .helpers import Driver, workflow

LIMIT = 1_000
BIG = [{"text": "x" * 2_000}]  # over LIMIT, and not an object: stored whole
PID = payload_id(canonical_json(BIG))


def decode(data: bytes) -> Any:
    return msgspec.json.decode(data)


# -- what a reference is ------------------------------------------------------------------------------------


def test_a_reference_names_the_sha256_of_the_canonical_json_and_its_size() -> None:
    data = canonical_json(BIG)
    ref = reference(payload_id(data), len(data))
    assert ref == {REF_KEY: f"sha256:{hashlib.sha256(data).hexdigest()}", "size": len(data)}
    assert reference_id(ref) == PID


def test_canonical_json_does_not_depend_on_key_order() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'
    assert payload_id(canonical_json({"a": 1, "b": 2})) == payload_id(canonical_json({"b": 2, "a": 1}))


@pytest.mark.parametrize(
    "value",
    [
        {REF_KEY: PID},  # no size
        {REF_KEY: PID, "size": 10, "more": 1},  # another key
        {REF_KEY: PID, "size": "10"},  # size not an integer
        {REF_KEY: PID.upper(), "size": 10},  # not lower-case hex
        {REF_KEY: "sha256:abc", "size": 10},  # too short
        {REF_KEY: "md5:" + "0" * 64, "size": 10},  # another algorithm
        {"$spane.payloads": PID, "size": 10},  # another key name
        [REF_KEY, PID],
        f"{REF_KEY} {PID}",
    ],
)
def test_only_the_exact_shape_is_a_reference(value: Any) -> None:
    assert reference_id(value) is None
    assert references_in(value) == set()


def test_references_are_found_at_any_depth() -> None:
    other = payload_id(b'"other"')
    value = {"a": reference(PID, 3), "b": [1, {"c": reference(other, 7)}], "d": "plain"}
    assert references_in(value) == {PID, other}
    assert references_in({"a": [1, 2, {"b": "text"}]}) == set()
    assert references_in(None) == set()


# -- putting values back ------------------------------------------------------------------------------------


def test_substitute_puts_each_value_back_in_place() -> None:
    payloads = {PID: canonical_json(BIG)}
    value = {"a": reference(PID, 1), "rest": [reference(PID, 1), 2]}
    assert substitute(value, payloads, decode) == {"a": BIG, "rest": [BIG, 2]}


def test_each_occurrence_is_a_copy_of_its_own() -> None:
    value = substitute({"a": reference(PID, 1), "b": reference(PID, 1)}, {PID: canonical_json(BIG)}, decode)
    value["a"][0]["text"] = "changed"
    assert value["b"] == BIG


def test_a_reference_without_its_payload_is_left_as_it_is() -> None:
    value = {"a": reference(PID, 1)}
    assert substitute(value, {}, decode) == value


# -- when a value is stored aside ----------------------------------------------------------------------------


def test_a_value_within_the_limit_travels_as_it_is() -> None:
    small = {"text": "x" * 100}
    assert offload(small, LIMIT).value is small
    assert offload(small, LIMIT).payloads == {}


def test_a_value_over_the_limit_travels_as_a_reference_to_its_stored_json() -> None:
    out = offload(BIG, LIMIT)
    data = canonical_json(BIG)
    assert out.value == reference(PID, len(data))
    assert out.payloads == {PID: data}
    assert decode(out.payloads[PID]) == BIG


def test_the_same_value_gives_the_same_reference() -> None:
    assert offload(BIG, LIMIT) == offload([{"text": "x" * 2_000}], LIMIT)


def test_a_large_object_keeps_its_shape_when_storing_its_large_members_is_enough() -> None:
    join_output = {"a": BIG, "b": BIG, "c": {"small": 1}}
    out = offload(join_output, LIMIT)
    ref = reference(PID, len(canonical_json(BIG)))
    assert out.value == {"a": ref, "b": ref, "c": {"small": 1}}
    assert out.payloads == {PID: canonical_json(BIG)}  # one payload for both members


def test_a_value_gives_the_same_references_wherever_it_sits_so_a_join_stores_nothing_new() -> None:
    value = {"id": 7, "rows": BIG, "more": {"rows": [BIG]}}
    alone = offload(value, LIMIT)
    assert alone.value["id"] == 7 and reference_id(alone.value["rows"]) == PID
    joined = offload({"a": value, "b": value}, LIMIT)
    assert joined.value == {"a": alone.value, "b": alone.value}
    assert joined.payloads.items() <= alone.payloads.items()


def test_a_large_object_of_many_small_members_is_stored_whole() -> None:
    many = {f"k{i}": "y" * 50 for i in range(40)}
    out = offload(many, LIMIT)
    assert reference_id(out.value) == payload_id(canonical_json(many))
    assert list(out.payloads.values()) == [canonical_json(many)]


def test_a_large_list_is_stored_whole() -> None:
    out = offload([{"a": BIG}, BIG], LIMIT)
    assert reference_id(out.value) is not None
    assert references_in(decode(next(iter(out.payloads.values())))) == set()  # a payload never holds a reference


# -- the engine moves references like any other value -------------------------------------------------------

DIAMOND = [
    {"id": "s", "type": "transform", "outputs": ["a", "b"]},
    {"id": "a", "type": "transform", "outputs": ["j"]},
    {"id": "b", "type": "transform", "outputs": ["j"]},
    {"id": "j", "type": "transform", "inputs": ["a", "b"]},
]


def test_tasks_and_the_execution_output_carry_references_where_the_values_would_be() -> None:
    ref = reference(PID, 2_012)
    d = Driver(workflow(DIAMOND))
    events = d.send(Start(execution_id=ExecutionId("e1"), input=ref))
    (task,) = effects(d.wf, None, d.s, events).tasks
    assert task.input == ref
    for node_id in ("s", "a"):
        lease = d.start_node(node_id)
        d.send(Complete(node_id=NodeId(node_id), lease=lease, output=ref))
    lease = d.start_node("b")
    before = d.s
    events = d.send(Complete(node_id=NodeId("b"), lease=lease, output={"small": 1}))
    (join,) = effects(d.wf, before, d.s, events).tasks
    assert join.input == {"a": ref, "b": {"small": 1}}
    lease = d.start_node("j")
    d.send(Complete(node_id=NodeId("j"), lease=lease, output={"a": ref, "b": {"small": 1}}))
    assert d.s.output == {"a": ref, "b": {"small": 1}}


# -- the per-process cache ----------------------------------------------------------------------------------


def test_the_cache_holds_at_most_its_bytes_and_drops_the_least_recently_used() -> None:
    cache = PayloadCache(max_bytes=400)
    for i in range(4):
        cache.put(f"p{i}", bytes(100))
    assert cache.get("p0") is not None  # p0 is now the most recently used
    cache.put("p4", bytes(100))
    assert cache.size <= 400 and len(cache) == 4
    assert cache.get("p1") is None
    assert all(cache.get(p) is not None for p in ("p0", "p2", "p3", "p4"))


def test_the_cache_does_not_take_a_value_that_would_push_out_a_quarter_of_it() -> None:
    cache = PayloadCache(max_bytes=400)
    cache.put("small", bytes(100))
    cache.put("huge", bytes(101))
    assert cache.get("huge") is None
    assert cache.get("small") is not None
