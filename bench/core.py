"""``python -m bench.core``: the CPU the pure core spends per node execution, without Redis or any service.

For E executions of a workload it decides every transition a worker would commit (the start, then each node's start
and result), computes its effects and encodes the snapshot, and prints node executions per second of CPU time. The
figure to compare (A/B, alternating two worktrees) when changing ``decide``, ``evolve`` or ``effects``: unlike the
whole system's, it barely moves with the load of other processes on the machine.
"""

from __future__ import annotations

import argparse
import time

import msgspec
from spane_core import codec
from spane_core.commands import Command, Complete, Context, MarkStarted, Start
from spane_core.decide import decide_and_evolve
from spane_core.definition import Workflow, WorkflowDefinition
from spane_core.effects import effects
from spane_core.ids import ExecutionId
from spane_core.state import ExecutionState, ExecutionStatus, NodeStatus

from bench.workloads import WORKLOADS


def run_one(workflow: Workflow, n: int, input: object) -> int:
    """Run execution ``n`` to its end; returns its node executions."""
    ctx = Context(now=1_000 + n, lease=f"lease-{n}")
    state: ExecutionState | None = None
    ran = 0

    def step(command: Command) -> ExecutionState:
        nonlocal state
        events, after = decide_and_evolve(state, workflow, command, ctx)
        assert after is not None
        effects(workflow, state, after, events)
        codec.encode(after)
        state = after
        return after

    current = step(Start(execution_id=ExecutionId(f"e{n}"), input=input))
    while current.status is ExecutionStatus.RUNNING:
        for node_id in [k for k, v in current.nodes.items() if v.status is NodeStatus.QUEUED]:
            current = step(MarkStarted(node_id=node_id, queued_seq=current.node(node_id).queued_seq))
            current = step(Complete(node_id=node_id, lease=current.node(node_id).lease, output={"from": node_id}))
            ran += 1
    return ran


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__)
    parser.add_argument("--workload", default="diamond", choices=sorted(WORKLOADS))
    parser.add_argument("-E", "--executions", type=int, default=6000)
    args = parser.parse_args()
    load = WORKLOADS[args.workload]
    workflow = Workflow(msgspec.convert(load.definition(), WorkflowDefinition), 1)
    started = time.process_time()
    nodes = sum(run_one(workflow, n, load.make_input(n)) for n in range(args.executions))
    spent = time.process_time() - started
    print(f"{args.workload}: {nodes / spent:,.0f} node executions/s of CPU ({nodes} in {spent:.2f} s)")


if __name__ == "__main__":
    main()
