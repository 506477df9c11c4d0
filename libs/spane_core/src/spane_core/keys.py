"""Every Redis key SPANE uses, in one place.

Keys of an execution carry its partition as a hash tag (``spane:{p}:...``) so that each commit script touches one
slot: the same code runs on one Redis, Sentinel or Cluster. Workflow registry keys share the ``{w}`` slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from spane_core.ids import partition_of

PREFIX = "spane"
WORKER_GROUP = "workers"
STATS = f"{PREFIX}:stats"  # hash of counters shared by every process, reported by /metrics
PROJECTOR_GROUP = "projector"
PRIORITIES = range(10, 0, -1)  # an execution's priority, highest first
DEFAULT_PRIORITY = 5
# Hash: worker consumer name -> "<worst event-loop lag of its last period, in s>|<epoch s>" (served by /metrics).
WORKER_LAG = f"{PREFIX}:{{w}}:worker-lag"


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """The keys of one partition; ``priority`` picks which of its tasks streams ``tasks`` names."""

    partition: int
    priority: int = DEFAULT_PRIORITY

    @property
    def tag(self) -> str:
        return f"{PREFIX}:{{{self.partition}}}"

    @property
    def tasks(self) -> str:
        """Stream of the node tasks of executions of this priority; consumer group ``workers``."""
        if self.priority == DEFAULT_PRIORITY:
            return f"{self.tag}:tasks"
        return f"{self.tag}:tasks:p{self.priority}"

    def at_priority(self, priority: int) -> PartitionKeys:
        return self if priority == self.priority else PartitionKeys(self.partition, priority)

    def bands(self) -> list[PartitionKeys]:
        """This partition at every priority, highest first: one tasks stream each."""
        return [PartitionKeys(self.partition, priority) for priority in PRIORITIES]

    @property
    def events(self) -> str:
        """Stream with one entry per commit (field ``b``: the commit's envelopes); consumer group ``projector``."""
        return f"{self.tag}:events"

    @property
    def events_trimmed(self) -> str:
        """String: the id of the newest entry ever trimmed from ``events`` (a resume from before it may miss some)."""
        return f"{self.tag}:events:trimmed"

    @property
    def timers(self) -> str:
        """Sorted set of timer members scored by due time (epoch ms)."""
        return f"{self.tag}:timers"

    def snapshot(self, execution_id: str) -> str:
        """Hash: ``v`` the seq of the last event, ``s`` the encoded state, ``w`` workflow id, ``n`` its version."""
        return f"{self.tag}:exec:{execution_id}"

    def log(self, execution_id: str) -> str:
        """List of the execution's encoded envelopes; element i has seq i + 1."""
        return f"{self.tag}:log:{execution_id}"


def for_execution(execution_id: str, partitions: int) -> PartitionKeys:
    return PartitionKeys(partition_of(execution_id, partitions))


def all_partitions(partitions: int) -> list[PartitionKeys]:
    return [PartitionKeys(p) for p in range(max(1, partitions))]


def all_bands(partitions: int) -> list[PartitionKeys]:
    """Every partition at every priority: the worker group's tasks streams."""
    return [band for p in all_partitions(partitions) for band in p.bands()]


class WorkflowKeys:
    TAG = f"{PREFIX}:{{w}}"
    definitions = f"{TAG}:defs"  # hash "<id>@<version>" -> canonical definition JSON
    latest = f"{TAG}:latest"  # hash id -> latest version
    digests = f"{TAG}:digest"  # hash id -> sha256 of the latest version's canonical JSON
    deleted = f"{TAG}:deleted"  # set of deleted workflow ids
    webhooks = f"{TAG}:webhooks"  # hash webhook path -> ids of the workflows listening there, newline-separated
    hook_paths = f"{TAG}:hook-paths"  # hash workflow id -> its webhook paths, newline-separated
    schedules = f"{TAG}:schedules"  # hash id -> latest version, for workflows whose latest has schedule triggers
    cron_runs = f"{TAG}:cron-runs"  # hash "<id> <schedule key>" -> the last tick fired (msgpack: at, execution)
    events = f"{TAG}:events"  # stream of workflow events (field ``b``); consumer group ``projector``

    @staticmethod
    def idempotency(workflow_id: str, key: str) -> str:
        return f"{PREFIX}:{{i}}:idem:{workflow_id}:{key}"


class LimitKeys:
    """The shared limiters (circuit breakers, rate-limit buckets, concurrency limits), all in the ``{limits}`` slot so
    that one script reads and updates every limit of a node at once."""

    TAG = f"{PREFIX}:{{limits}}"
    breakers = f"{TAG}:breakers"  # set of breaker names
    buckets = f"{TAG}:buckets"  # set of bucket names
    concurrency = f"{TAG}:concurrency"  # hash node type -> its concurrency limit
    stats = f"{TAG}:stats"  # hash of counters: throttled|<reason>|<limit>, transitions|<breaker>|<state>

    @classmethod
    def breaker(cls, name: str) -> str:
        """Hash: state, failures, successes, openUntil, probe, probeUntil and the thresholds last configured."""
        return f"{cls.TAG}:breaker:{name}"

    @classmethod
    def breaker_waiting(cls, name: str) -> str:
        """Sorted set of the timer members of nodes that the breaker deferred, by when they first waited."""
        return f"{cls.TAG}:breaker-waiting:{name}"

    @classmethod
    def bucket(cls, name: str) -> str:
        """Hash: tat (the token bucket's theoretical arrival time, epoch ms), max, perMs."""
        return f"{cls.TAG}:bucket:{name}"

    @classmethod
    def reserved(cls, name: str) -> str:
        """Sorted set of the members holding a token reserved for later, by the time it is theirs."""
        return f"{cls.TAG}:reserved:{name}"

    @classmethod
    def holders(cls, name: str) -> str:
        """Sorted set of the members running under a concurrency limit, by when their hold expires."""
        return f"{cls.TAG}:holders:{name}"

    @classmethod
    def concurrency_waiting(cls, name: str) -> str:
        return f"{cls.TAG}:concurrency-waiting:{name}"
