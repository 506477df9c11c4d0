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

import msgspec

from spane_core import codec
from spane_core.commands import Command, Context, Start
from spane_core.decide import decide_and_evolve
from spane_core.definition import Workflow
from spane_core.effects import effects
from spane_core.errors import ConcurrencyError, InternalError, NotFound, SpaneError, StorageError
from spane_core.events import Envelope
from spane_core.ids import ExecutionId, WorkflowId, new_lease
from spane_core.keys import DEFAULT_PRIORITY, PartitionKeys, for_execution
from spane_core.lru import ByteLRU
from spane_core.state import FINISHED_EXECUTION, ExecutionState, fold
from spane_core.store.commit import Commit, Committed, Failed, Refused, Repository, Stored
from spane_core.store.refusals import FAILED_COUNTER, Refusals

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
        self, transitions: Sequence[Transition], first_round: bool, verify: set[str]
    ) -> list[tuple[ExecutionState | None, bool]]:
        """Each execution's snapshot, and whether it is a guess (cached or assumed) rather than loaded.

        A start is assumed to be the first: a new id has no snapshot to load. Were it started already, the commit
        is refused like any stale guess and the execution's snapshot comes back with the refusal. A cached state
        in ``verify`` is brought up to date with the log after it (what other processes committed since).
        """
        missing = [
            t.execution_id
            for t in transitions
            if t.execution_id not in self._cache and not (first_round and _starts(t))
        ]
        loaded = await self._load_and_remember(missing)
        behind = [(eid, state) for eid in verify if (state := self._cache.get(eid)) is not None]
        tails = await self.repository.tails([(eid, state.seq) for eid, state in behind]) if behind else []
        for (eid, state), tail in zip(behind, tails, strict=True):
            current = fold(map(codec.decode_envelope, tail), state) if tail else state
            self._remember(eid, current, self._cache.weight(eid) + sum(map(len, tail)))
            loaded[eid] = current
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
        for eid, stored in zip(execution_ids, await self.repository.load_stored(execution_ids), strict=True):
            state = restore(stored)
            self._remember(eid, state, 0 if stored is None else stored.size)
            loaded[eid] = state
        return loaded

    def keys(self, execution_id: str) -> PartitionKeys:
        return for_execution(execution_id, self.repository.partitions)

    async def load(self, execution_id: str) -> ExecutionState | None:
        (state,) = await self.load_many([execution_id])
        return state

    async def load_many(self, execution_ids: Sequence[str]) -> list[ExecutionState | None]:
        return [restore(stored) for stored in await self.repository.load_stored(execution_ids)]

    async def read_log(self, execution_id: str, after_seq: int = 0) -> list[Envelope]:
        return await self.repository.read_log(execution_id, after_seq)

    async def apply(self, transition: Transition) -> Outcome:
        (outcome,) = await self.transact([transition])
        if outcome.error is not None:
            raise outcome.error
        return outcome

    async def transact(self, transitions: Sequence[Transition]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        transitions = list(transitions)  # a refused one may give way to its execution's failure
        refusals = Refusals()
        pending = list(range(len(transitions)))
        verify: set[str] = set()
        for round_ in range(MAX_ROUNDS):
            if not pending:
                break
            states = await self._current([transitions[i] for i in pending], round_ == 0, verify)
            verify = set()
            commits = []
            in_flight = []
            again = []
            decided_on: dict[int, ExecutionState | None] = {}
            unstorable: dict[int, Failed] = {}
            for i, (state, cached) in zip(pending, states, strict=True):
                t = transitions[i]
                decided_on[i] = state
                outcome, commit = await self._prepare(t, state)
                outcomes[i] = outcome
                if cached and t.commands and not outcome.events:
                    # Deciding nothing is not checked by the commit's version guard: decide again on the state
                    # brought up to date (the log after it), lest a stale cached one call a live task stale.
                    verify.add(t.execution_id)
                    again.append(i)
                    continue
                if isinstance(commit, Failed):  # it cannot even be encoded: refused before it reaches the store
                    in_flight.append(i)
                    unstorable[i] = commit
                elif commit is not None:
                    commits.append(commit)
                    in_flight.append(i)
            committed = iter(await self.repository.commit(commits) if commits else [])
            pending = again
            for i in in_flight:
                result = unstorable.pop(i, None) or next(committed)
                eid = transitions[i].execution_id
                if isinstance(result, Committed):
                    if outcomes[i].events:
                        self._remember(eid, outcomes[i].state, outcomes[i].snapshot_bytes)
                elif isinstance(result, Failed):
                    self._cache.pop(eid)
                    retry = refusals.refused(i, transitions[i], result)
                    if retry is None:
                        outcomes[i] = Outcome(eid, error=StorageError(f"the store refused: {result.cause}"))
                    else:
                        transitions[i] = retry
                        pending.append(i)
                else:
                    self._remember(eid, *_after_refusal(decided_on[i], result))
                    pending.append(i)
        for i in pending:
            outcomes[i] = Outcome(transitions[i].execution_id, error=ConcurrencyError("too many conflicts"))
        if failed := sum(1 for i in refusals.aborting if outcomes[i].events and outcomes[i].error is None):
            await self.repository.count(FAILED_COUNTER, failed)
        return [outcomes[i] for i in range(len(transitions))]

    async def _prepare(self, t: Transition, state: ExecutionState | None) -> tuple[Outcome, Commit | Failed | None]:
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
            priority = state.priority if state is not None else DEFAULT_PRIORITY
            return outcome, Commit(t.execution_id, 0, dropped_timers=t.drop_timers, acks=acks, priority=priority)
        assert after is not None
        assert workflow is not None  # events were decided, so the try block ran to its end
        base = state.seq if state is not None else 0
        # The execution's trace context, whoever commits (a worker, the scheduler, the API): tasks carry it on.
        traceparent = after.traceparent or t.traceparent
        envelopes = [
            Envelope(
                execution_id=t.execution_id,
                workflow_id=after.workflow_id,
                seq=base + n,
                at=now,
                event=event,
                traceparent=traceparent,
            )
            for n, event in enumerate(events, start=1)
        ]
        eff = effects(workflow, state, after, events, traceparent)
        every = snapshot_every(workflow)
        try:
            encoded = [codec.encode(e) for e in envelopes]
            snapshot = codec.encode(after) if base == 0 or base // every != after.seq // every else b""
        except (OverflowError, msgspec.EncodeError) as e:  # a value msgpack cannot hold (an integer over 64 bits)
            return outcome, Failed(f"the transition cannot be stored: {e}")
        outcome.snapshot_bytes = len(snapshot) or self._cache.weight(t.execution_id) + sum(map(len, encoded))
        outcome.state = after
        outcome.events = envelopes
        return outcome, Commit(
            t.execution_id,
            base,
            state=after,
            snapshot=snapshot,
            envelopes=envelopes,
            encoded=encoded,
            tasks=eff.tasks,
            timers=eff.timers,
            dropped_timers=[*t.drop_timers, *eff.dropped_timers],
            acks=acks,
            priority=after.priority,
        )


def snapshot_every(workflow: Workflow) -> int:
    """How many events an execution's log may hold past its stored snapshot: one for a small workflow (every commit
    rewrites the snapshot, loads need no fold), more for a large one, whose snapshot grows with its nodes: rewritten
    every ~N/8 events, a commit costs O(1) amortized instead of O(N), and a load folds at most that many events."""
    return max(1, len(workflow.graph.nodes) // 8)


def restore(stored: Stored | None) -> ExecutionState | None:
    """The state of a stored execution: its snapshot with the log after it folded on."""
    if stored is None:
        return None
    state = codec.decode_state(stored.snapshot)
    return fold(map(codec.decode_envelope, stored.tail), state) if stored.tail else state


def _after_refusal(decided_on: ExecutionState | None, refused: Refused) -> tuple[ExecutionState | None, int]:
    """The current state a refusal tells of (and a measure of its size): the log after the state the decision was
    made on, folded onto it; or the stored execution it handed back whole."""
    if refused.tail is not None and decided_on is not None:
        state = fold(map(codec.decode_envelope, refused.tail), decided_on)
        if state is not None and state.seq == refused.seq:
            return state, sum(map(len, refused.tail))
    if refused.stored is None:
        return None, 0
    return restore(refused.stored), refused.stored.size


def _starts(transition: Transition) -> bool:
    return transition.workflow is not None and any(isinstance(c, Start) for c in transition.commands)
