"""The execution store: load a snapshot, decide, and commit the events with their effects in one atomic step.

Many transitions are decided and committed together, in one pipelined round trip per phase, because the worker
moves hundreds of tasks at a time. A version conflict (a sibling node committed first) reloads and decides again.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from redis.asyncio import Redis

from spane_core import codec
from spane_core.commands import Command, Context, Start
from spane_core.decide import decide_and_evolve
from spane_core.definition import Workflow
from spane_core.effects import effects
from spane_core.errors import ConcurrencyError, InternalError, NotFound, SpaneError
from spane_core.events import Envelope
from spane_core.ids import ExecutionId, WorkflowId, new_lease
from spane_core.keys import WORKER_GROUP, PartitionKeys, for_execution
from spane_core.state import FINISHED_EXECUTION, ExecutionState
from spane_core.store.scripts import LuaScript, run_pipelined

log = logging.getLogger("spane.store")
MAX_ROUNDS = 64
# Snapshots this process committed or saw last, by execution. A cached snapshot may be stale (another process
# committed since): the commit script's version check then refuses it and hands back the current one, so a hit
# saves the load round trip and a miss costs nothing extra.
CACHE_SIZE = 1024
# ...and at most this many bytes of encoded snapshots (decoded, they take a few times more): large payloads
# must not make the cache the biggest thing in a worker.
CACHE_BYTES = 8 * 1024 * 1024


class WorkflowSource(Protocol):
    async def get(self, workflow_id: WorkflowId, version: int | None = None) -> Workflow: ...


@dataclass
class Transition:
    """Commands for one execution, decided in order and committed as one transition."""

    execution_id: ExecutionId
    commands: Sequence[Command]
    workflow: Workflow | None = None  # needed to start an execution; otherwise read from its snapshot
    ack: Sequence[str] = ()  # task stream entries to acknowledge in the same commit
    # Per command (same order as ``commands``): a task entry to acknowledge only if that command records events.
    # A worker's result uses it: a stale result (its lease was taken over by a reclaim) must not acknowledge the
    # task that the new lease holder is still running, or that task could never be reclaimed again.
    ack_if_recorded: Sequence[str | None] = ()
    drop_timers: Sequence[str] = ()
    traceparent: str | None = None


@dataclass
class Outcome:
    execution_id: ExecutionId
    state: ExecutionState | None = None  # after the transition
    events: list[Envelope] = field(default_factory=list)
    error: SpaneError | None = None
    snapshot_bytes: int = 0  # the size of the committed snapshot, encoded


def now_ms() -> int:
    return int(time.time() * 1000)


class ExecutionStore:
    def __init__(self, redis: Redis, workflows: WorkflowSource, partitions: int = 1) -> None:
        self.redis = redis
        self.workflows = workflows
        self.partitions = partitions
        self._commit = LuaScript("commit")
        self._cache: OrderedDict[str, tuple[ExecutionState, int]] = OrderedDict()
        self._cache_bytes = 0

    def _forget(self, execution_id: str) -> None:
        entry = self._cache.pop(execution_id, None)
        if entry is not None:
            self._cache_bytes -= entry[1]

    def _remember(self, execution_id: str, state: ExecutionState | None, size: int) -> None:
        self._forget(execution_id)
        if state is None or state.status in FINISHED_EXECUTION:
            return
        self._cache[execution_id] = (state, size)
        self._cache_bytes += size
        while self._cache and (len(self._cache) > CACHE_SIZE or self._cache_bytes > CACHE_BYTES):
            _, (_, evicted) = self._cache.popitem(last=False)
            self._cache_bytes -= evicted

    async def _current(
        self, transitions: Sequence[Transition], first_round: bool
    ) -> list[tuple[ExecutionState | None, bool]]:
        """Each execution's snapshot, and whether it is a guess (cached or assumed) rather than read from Redis.

        A start is assumed to be the first: a new id has no snapshot to load. Were it started already, the commit
        is refused like any stale guess and the execution's snapshot comes back with the refusal.
        """
        missing = [
            t.execution_id
            for t in transitions
            if t.execution_id not in self._cache and not (first_round and _starts(t))
        ]
        loaded = await self._load_and_remember(missing)
        return [
            (loaded[t.execution_id], False)
            if t.execution_id in loaded
            else (_state_of(self._cache.get(t.execution_id)), True)
            for t in transitions
        ]

    async def peek(self, execution_ids: Sequence[str]) -> list[ExecutionState | None]:
        """The snapshots this process last saw, else read from Redis: a hint that may be stale, never a decision."""
        missing = [eid for eid in execution_ids if eid not in self._cache]
        loaded = await self._load_and_remember(missing)
        return [loaded[eid] if eid in loaded else _state_of(self._cache.get(eid)) for eid in execution_ids]

    async def _load_and_remember(self, execution_ids: Sequence[str]) -> dict[str, ExecutionState | None]:
        """Read snapshots from Redis and cache them: a worker that peeked at an execution before running its task
        then commits the result without reading the snapshot again."""
        if not execution_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for eid in execution_ids:
            pipe.hget(self.keys(eid).snapshot(eid), "s")
        loaded: dict[str, ExecutionState | None] = {}
        for eid, data in zip(execution_ids, await pipe.execute(), strict=True):
            state = None if data is None else codec.decode_state(data)
            self._remember(eid, state, len(data or b""))
            loaded[eid] = state
        return loaded

    def keys(self, execution_id: str) -> PartitionKeys:
        return for_execution(execution_id, self.partitions)

    async def load(self, execution_id: str) -> ExecutionState | None:
        # The client does not decode responses, so redis-py's ``bytes | str`` is bytes here (and below).
        data = cast(bytes | None, await self.redis.hget(self.keys(execution_id).snapshot(execution_id), "s"))
        return None if data is None else codec.decode_state(data)

    async def load_many(self, execution_ids: Sequence[str]) -> list[ExecutionState | None]:
        pipe = self.redis.pipeline(transaction=False)
        for eid in execution_ids:
            pipe.hget(self.keys(eid).snapshot(eid), "s")
        return [None if d is None else codec.decode_state(d) for d in await pipe.execute()]

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]:
        raw = cast(list[bytes], await self.redis.lrange(self.keys(execution_id).log(execution_id), after_seq, -1))
        return [codec.decode_envelope(item) for item in raw]

    async def apply(self, transition: Transition) -> Outcome:
        (outcome,) = await self.transact([transition])
        if outcome.error is not None:
            raise outcome.error
        return outcome

    async def transact(self, transitions: Sequence[Transition]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        pending = list(range(len(transitions)))
        for round_ in range(MAX_ROUNDS):
            if not pending:
                break
            states = await self._current([transitions[i] for i in pending], first_round=round_ == 0)
            calls = []
            in_flight = []
            again = []
            for i, (state, cached) in zip(pending, states, strict=True):
                t = transitions[i]
                outcome, call = await self._prepare(t, state)
                outcomes[i] = outcome
                if cached and t.commands and not outcome.events:
                    # Deciding nothing is not checked by the commit's version guard: decide again on a
                    # snapshot read from Redis, lest a stale cached one call a live task stale.
                    self._forget(t.execution_id)
                    again.append(i)
                    continue
                if call is not None:
                    calls.append(call)
                    in_flight.append(i)
            results = await run_pipelined(self.redis, self._commit, calls) if calls else []
            pending = again
            for i, result in zip(in_flight, results, strict=True):
                eid = transitions[i].execution_id
                if int(result[0]) == 1:
                    if outcomes[i].events:
                        self._remember(eid, outcomes[i].state, outcomes[i].snapshot_bytes)
                else:
                    current = result[2] if len(result) > 2 else None
                    self._remember(eid, codec.decode_state(current) if current else None, len(current or b""))
                    pending.append(i)
        for i in pending:
            outcomes[i] = Outcome(transitions[i].execution_id, error=ConcurrencyError("too many conflicts"))
        return [outcomes[i] for i in range(len(transitions))]

    async def _prepare(
        self, t: Transition, state: ExecutionState | None
    ) -> tuple[Outcome, tuple[list[str], list[object]] | None]:
        outcome = Outcome(t.execution_id, state=state)
        try:
            workflow = t.workflow
            if workflow is None:
                if state is None:
                    raise NotFound(f"execution {t.execution_id!r} not found")
                workflow = await self.workflows.get(state.workflow_id, state.workflow_version)
            now = now_ms()
            ctx = Context(now=now, lease=new_lease(), jitter=random.random())
            after = state
            events = []
            acks = list(t.ack)
            for n, command in enumerate(t.commands):
                decided, after = decide_and_evolve(after, workflow, command, ctx)
                events += decided
                if decided and n < len(t.ack_if_recorded) and (entry := t.ack_if_recorded[n]) is not None:
                    acks.append(entry)
        except SpaneError as e:
            outcome.error = e
            events = []
            acks = list(t.ack)
        except Exception as e:  # a bug in the rules for this execution: fail its transition, not the whole batch
            log.exception("deciding on execution %s failed", t.execution_id)
            outcome.error = InternalError(f"deciding on execution {t.execution_id!r} failed: {e!r}")
            events = []
            acks = list(t.ack)
        if not events and not acks and not t.drop_timers:
            return outcome, None
        keys = self.keys(t.execution_id)
        key_list = [keys.snapshot(t.execution_id), keys.log(t.execution_id), keys.events, keys.tasks, keys.timers]
        if not events:
            args: list[object] = [0, 0, b"", "", 0, b"", WORKER_GROUP, 0, 0, 0]
            args += [len(t.drop_timers), *t.drop_timers, len(acks), *acks]
            return outcome, (key_list, args)
        assert after is not None
        assert workflow is not None  # events were decided, so the try block ran to its end
        base = state.seq if state is not None else 0
        envelopes = [
            Envelope(
                execution_id=t.execution_id,
                workflow_id=after.workflow_id,
                seq=base + n,
                at=now,
                event=event,
                traceparent=t.traceparent,
            )
            for n, event in enumerate(events, start=1)
        ]
        eff = effects(workflow, state, after, events, t.traceparent)
        encoded = [codec.encode(e) for e in envelopes]
        timer_args: list[object] = []
        for timer in eff.timers:
            timer_args += [timer.due, timer.member]
        snapshot = codec.encode(after)
        outcome.snapshot_bytes = len(snapshot)
        args = [base, after.seq, snapshot, after.workflow_id, after.workflow_version]
        args += [b"\x90" if not encoded else _msgpack_array(encoded), WORKER_GROUP]
        args += [len(encoded), *encoded]
        args += [len(eff.tasks), *(codec.encode(task) for task in eff.tasks)]
        args += [len(timer_args), *timer_args]
        args += [len(t.drop_timers) + len(eff.dropped_timers), *t.drop_timers, *eff.dropped_timers]
        args += [len(acks), *acks]
        outcome.state = after
        outcome.events = envelopes
        return outcome, (key_list, args)


def _state_of(entry: tuple[ExecutionState, int] | None) -> ExecutionState | None:
    return None if entry is None else entry[0]


def _starts(transition: Transition) -> bool:
    return transition.workflow is not None and any(isinstance(c, Start) for c in transition.commands)


def _msgpack_array(items: list[bytes]) -> bytes:
    """A msgpack array of already-encoded items, without decoding and re-encoding them."""
    n = len(items)
    if n < 16:
        header = bytes([0x90 | n])
    elif n < 65536:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(items)
