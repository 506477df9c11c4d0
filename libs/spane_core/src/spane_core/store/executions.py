"""The command handler over executions: load a snapshot, decide, and commit the events with their effects.

Many transitions are decided and committed together, in one repository round trip per phase, because the worker
moves hundreds of tasks at a time. A version conflict (a sibling node committed first) decides again on the
snapshot the refusal handed back. Time and jitter come from the given clock and random source.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from spane_core import codec
from spane_core.commands import Command, Context, Start
from spane_core.decide import decide_and_evolve
from spane_core.definition import Workflow
from spane_core.effects import effects
from spane_core.errors import ConcurrencyError, InternalError, NotFound, SpaneError
from spane_core.events import Envelope
from spane_core.ids import ExecutionId, WorkflowId, new_lease
from spane_core.keys import PartitionKeys, for_execution
from spane_core.lru import ByteLRU
from spane_core.state import FINISHED_EXECUTION, ExecutionState
from spane_core.store.commit import Commit, Committed, Repository

log = logging.getLogger("spane.store")
MAX_ROUNDS = 64
# Snapshots this process committed or saw last, by execution. A cached snapshot may be stale (another process
# committed since): the commit's version check then refuses it and hands back the current one, so a hit
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
    """The command handler: decides transitions and commits them through a ``Repository``.

    ``clock`` (epoch ms) and ``rand`` (a fraction in [0, 1), the retry jitter) are its only sources of time and
    chance, so that tests can fix both.
    """

    def __init__(
        self,
        repository: Repository,
        workflows: WorkflowSource,
        clock: Callable[[], int] = now_ms,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.repository = repository
        self.workflows = workflows
        self.clock = clock
        self.rand = rand
        self._cache: ByteLRU[str, ExecutionState] = ByteLRU(CACHE_BYTES, CACHE_SIZE)

    @property
    def _cache_bytes(self) -> int:
        return self._cache.size

    def _remember(self, execution_id: str, state: ExecutionState | None, size: int) -> None:
        self._cache.pop(execution_id)
        if state is None or state.status in FINISHED_EXECUTION:
            return
        self._cache.put(execution_id, state, size)

    async def _current(
        self, transitions: Sequence[Transition], first_round: bool
    ) -> list[tuple[ExecutionState | None, bool]]:
        """Each execution's snapshot, and whether it is a guess (cached or assumed) rather than loaded.

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
            (loaded[t.execution_id], False) if t.execution_id in loaded else (self._cache.get(t.execution_id), True)
            for t in transitions
        ]

    async def peek(self, execution_ids: Sequence[str]) -> list[ExecutionState | None]:
        """The snapshots this process last saw, else loaded: a hint that may be stale, never a decision."""
        missing = [eid for eid in execution_ids if eid not in self._cache]
        loaded = await self._load_and_remember(missing)
        return [loaded[eid] if eid in loaded else self._cache.get(eid) for eid in execution_ids]

    async def _load_and_remember(self, execution_ids: Sequence[str]) -> dict[str, ExecutionState | None]:
        """Load snapshots and cache them: a worker that peeked at an execution before running its task
        then commits the result without reading the snapshot again."""
        if not execution_ids:
            return {}
        loaded: dict[str, ExecutionState | None] = {}
        for eid, data in zip(execution_ids, await self.repository.load_encoded(execution_ids), strict=True):
            state = None if data is None else codec.decode_state(data)
            self._remember(eid, state, len(data or b""))
            loaded[eid] = state
        return loaded

    def keys(self, execution_id: str) -> PartitionKeys:
        return for_execution(execution_id, self.repository.partitions)

    async def load(self, execution_id: str) -> ExecutionState | None:
        (state,) = await self.load_many([execution_id])
        return state

    async def load_many(self, execution_ids: Sequence[str]) -> list[ExecutionState | None]:
        encoded = await self.repository.load_encoded(execution_ids)
        return [None if d is None else codec.decode_state(d) for d in encoded]

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]:
        return await self.repository.read_log(execution_id, after_seq)

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
            commits = []
            in_flight = []
            again = []
            for i, (state, cached) in zip(pending, states, strict=True):
                t = transitions[i]
                outcome, commit = await self._prepare(t, state)
                outcomes[i] = outcome
                if cached and t.commands and not outcome.events:
                    # Deciding nothing is not checked by the commit's version guard: decide again on a
                    # snapshot loaded afresh, lest a stale cached one call a live task stale.
                    self._cache.pop(t.execution_id)
                    again.append(i)
                    continue
                if commit is not None:
                    commits.append(commit)
                    in_flight.append(i)
            results = await self.repository.commit(commits) if commits else []
            pending = again
            for i, result in zip(in_flight, results, strict=True):
                eid = transitions[i].execution_id
                if isinstance(result, Committed):
                    if outcomes[i].events:
                        self._remember(eid, outcomes[i].state, outcomes[i].snapshot_bytes)
                else:
                    current = result.snapshot
                    self._remember(eid, codec.decode_state(current) if current else None, len(current or b""))
                    pending.append(i)
        for i in pending:
            outcomes[i] = Outcome(transitions[i].execution_id, error=ConcurrencyError("too many conflicts"))
        return [outcomes[i] for i in range(len(transitions))]

    async def _prepare(self, t: Transition, state: ExecutionState | None) -> tuple[Outcome, Commit | None]:
        outcome = Outcome(t.execution_id, state=state)
        try:
            workflow = t.workflow
            if workflow is None:
                if state is None:
                    raise NotFound(f"execution {t.execution_id!r} not found")
                workflow = await self.workflows.get(state.workflow_id, state.workflow_version)
            now = self.clock()
            ctx = Context(now=now, lease=new_lease(), jitter=self.rand())
            after = state
            events = []
            acks = list(t.ack)
            for n, command in enumerate(t.commands):
                # ``after`` is owned once a command has decided something: the next ones evolve it in place.
                decided, after = decide_and_evolve(after, workflow, command, ctx, owned=after is not state)
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
        if not events:
            return outcome, Commit(t.execution_id, 0, dropped_timers=t.drop_timers, acks=acks)
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
        snapshot = codec.encode(after)
        outcome.snapshot_bytes = len(snapshot)
        outcome.state = after
        outcome.events = envelopes
        return outcome, Commit(
            t.execution_id,
            base,
            state=after,
            snapshot=snapshot,
            envelopes=envelopes,
            encoded=[codec.encode(e) for e in envelopes],
            tasks=eff.tasks,
            timers=eff.timers,
            dropped_timers=[*t.drop_timers, *eff.dropped_timers],
            acks=acks,
        )


def _starts(transition: Transition) -> bool:
    return transition.workflow is not None and any(isinstance(c, Start) for c in transition.commands)
