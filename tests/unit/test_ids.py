"""Identifiers: lease tokens and execution ids never repeat, within a process or across a fork; a process's
execution ids sort in the order it minted them."""

from __future__ import annotations

import os

from spane_core.ids import new_execution_id, new_lease


def test_leases_never_repeat_within_a_process() -> None:
    leases = [new_lease() for _ in range(10_000)]
    assert len(set(leases)) == len(leases)


def test_a_forked_child_does_not_repeat_its_parents_leases() -> None:
    before = new_lease()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next lease and leave at once
        os.write(write_end, new_lease().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    parent = new_lease()
    assert child not in (before, parent)
    assert child[:12] != parent[:12]  # a prefix of its own


def test_ulids_of_one_process_sort_in_the_order_they_were_minted() -> None:
    ids = [new_execution_id() for _ in range(5_000)]  # many in each millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 26 for i in ids)


def test_a_forked_child_does_not_mint_its_parents_next_ulid() -> None:
    new_execution_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, "".join(new_execution_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write_end)
    parents = {new_execution_id() for _ in range(50)}
    os.waitpid(pid, 0)
    text = os.read(read_end, 26 * 50).decode()
    os.close(read_end)
    childs = {text[i : i + 26] for i in range(0, len(text), 26)}
    assert len(childs) == 50 and not childs & parents
