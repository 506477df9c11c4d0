"""Identifiers: lease tokens never repeat, within a process or across a fork."""

from __future__ import annotations

import os

from spane_core.ids import new_lease


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
