"""The projector against real Redis and Postgres: envelopes are XADDed where the commit script puts them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from spane_core import codec, keys
from spane_core.events import (
    Envelope,
    ErrorInfo,
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionStarted,
    NodeCompleted,
    NodeDeadLettered,
    NodeFailed,
    NodeQueued,
    NodeSkipped,
    NodeStarted,
    NodeWaiting,
)
from spane_core.ids import ExecutionId, NodeId, WorkflowId, new_execution_id
from spane_core.readmodel import MIGRATIONS, migrate, schema_version
from spane_core.state import fold
from spane_core.workflow_events import WorkflowDeleted, WorkflowEvent, WorkflowRegistered
from spane_projector import Projector
from spane_projector.writer import FoldCache, write_commits

pytestmark = pytest.mark.integration

T0 = 1_780_000_000_000
WF = WorkflowId("orders")
ERR = ErrorInfo(message="boom", type="HTTPError")


class Log:
    """An execution's log as commits (each a list of envelopes), with seq and time assigned in order."""

    def __init__(self, execution_id: str | None = None) -> None:
        self.execution_id = ExecutionId(execution_id or new_execution_id(T0))
        self.commits: list[list[Envelope]] = []
        self.seq = 0

    def commit(self, *events: Event) -> list[Envelope]:
        batch = []
        for event in events:
            self.seq += 1
            at = T0 + 10 * self.seq
            batch.append(Envelope(execution_id=self.execution_id, workflow_id=WF, seq=self.seq, at=at, event=event))
        self.commits.append(batch)
        return batch

    @property
    def envelopes(self) -> list[Envelope]:
        return [e for c in self.commits for e in c]


def n(node_id: str) -> NodeId:
    return NodeId(node_id)


def busy_run(execution_id: str | None = None) -> Log:
    """A retry, a continueOnFail failure, a skip, a delay, then completion."""
    log = Log(execution_id)
    log.commit(
        ExecutionStarted(execution_id=log.execution_id, workflow_id=WF, workflow_version=2, input={"x": 1}),
        NodeQueued(node_id=n("a"), attempt=1),
    )
    log.commit(NodeStarted(node_id=n("a"), attempt=1, lease="l1"))
    log.commit(NodeFailed(node_id=n("a"), attempt=1, error=ERR, will_retry=True, retry_at=T0 + 5000))
    log.commit(NodeQueued(node_id=n("a"), attempt=2))
    log.commit(NodeStarted(node_id=n("a"), attempt=2, lease="l2"))
    log.commit(
        NodeCompleted(node_id=n("a"), attempt=2, output={"y": 2}, next_nodes=[n("b")]),
        NodeQueued(node_id=n("b"), attempt=1),
        NodeSkipped(node_id=n("c")),
    )
    log.commit(NodeStarted(node_id=n("b"), attempt=1, lease="l3"))
    log.commit(ExecutionPaused())
    log.commit(
        NodeFailed(node_id=n("b"), attempt=1, error=ERR, continued_on_fail=True), NodeQueued(node_id=n("d"), attempt=1)
    )
    log.commit(ExecutionResumed(), NodeWaiting(node_id=n("d"), reason="delay", until=T0 + 9000))
    log.commit(NodeCompleted(node_id=n("d"), attempt=1, output={"z": 3}), ExecutionCompleted(output={"z": 3}))
    return log


def dead_letter_run(execution_id: str | None = None) -> Log:
    """A node dead-lettered (the execution fails), retried from the DLQ with new input, then completed."""
    log = Log(execution_id)
    log.commit(
        ExecutionStarted(execution_id=log.execution_id, workflow_id=WF, workflow_version=1, input="in"),
        NodeQueued(node_id=n("a"), attempt=1),
    )
    log.commit(NodeStarted(node_id=n("a"), attempt=1))
    log.commit(
        NodeFailed(node_id=n("a"), attempt=1, error=ERR),
        NodeDeadLettered(node_id=n("a"), attempt=1, error=ERR, input={"edited": False}),
        ExecutionFailed(error=ErrorInfo(message="node 'a' failed"), node_id=n("a")),
    )
    log.commit(
        ExecutionResumed(), NodeQueued(node_id=n("a"), attempt=2, input_override={"ok": 1}, has_input_override=True)
    )
    log.commit(NodeStarted(node_id=n("a"), attempt=2))
    log.commit(NodeCompleted(node_id=n("a"), attempt=2, output="done"), ExecutionCompleted(output="done"))
    return log


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def xadd(redis: aioredis.Redis, commits: list[list[Envelope]], partitions: int = 1) -> None:
    for batch in commits:
        stream = keys.for_execution(batch[0].execution_id, partitions).events
        await redis.xadd(stream, {"b": codec.encode(batch)})


async def xadd_workflow(redis: aioredis.Redis, *events: WorkflowEvent) -> None:
    for event in events:
        await redis.xadd(keys.WorkflowKeys.events, {"b": codec.encode(event)})


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + 10
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[Projector]:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def projector_for(redis: aioredis.Redis, database: asyncpg.Pool | str, **options: Any) -> Projector:
    options.setdefault("consumer", "p1")
    return Projector(redis, database, block_ms=20, **options)


async def applied(projector: Projector, entries: int) -> None:
    async def done() -> bool:
        return projector.stats.entries >= entries

    await eventually(done)


def _masked(value: Any, execution_id: str) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value).replace(execution_id.encode(), b"<id>"))


async def rows(pool: asyncpg.Pool, table: str, execution_id: str) -> list[dict[str, Any]]:
    order = {"executions": "1", "node_runs": "node_id", "dead_letters": "id"}[table]
    async with pool.acquire() as conn:
        found = await conn.fetch(
            f"SELECT row_to_json(t)::text FROM {table} t WHERE execution_id = $1 ORDER BY {order}", execution_id
        )
    return [_masked(msgspec.json.decode(r[0]), execution_id) for r in found]


async def archive(pool: asyncpg.Pool, execution_id: str) -> list[dict[str, Any]]:
    """The archived log, in order, each seq once (runs may overlap; old events are jsonb), in its API form."""
    async with pool.acquire() as conn:
        runs = await conn.fetch("SELECT data FROM event_runs WHERE execution_id = $1", execution_id)
        old = await conn.fetch("SELECT seq, body::text FROM events WHERE execution_id = $1", execution_id)
    by_seq = {r[0]: msgspec.json.decode(r[1]) for r in old}
    for r in runs:
        for envelope in codec.decode_envelopes(r[0]):
            by_seq.setdefault(envelope.seq, codec.envelope_to_dict(envelope))
    return [_masked(by_seq[seq], execution_id) for seq in sorted(by_seq)]


async def snapshot(pool: asyncpg.Pool, execution_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of an execution, with its id masked so that runs of the same log under other ids compare."""
    tables = {t: await rows(pool, t, execution_id) for t in ("executions", "node_runs", "dead_letters")}
    return {**tables, "archive": await archive(pool, execution_id)}


async def test_migrate_is_idempotent_and_concurrent(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        everything = list(range(1, len(MIGRATIONS) + 1))
        assert sorted(results, key=len) == [[], [], everything]
        assert await migrate(conns[0]) == []
        assert await schema_version(conns[0]) == len(MIGRATIONS)
    finally:
        for conn in conns:
            await conn.close()


async def test_projects_executions_from_every_partition(redis: aioredis.Redis, db: asyncpg.Pool) -> None:
    busy, dead = busy_run(), dead_letter_run()
    # Written before the projector (and its group) exists: the group starts at 0, so nothing is missed.
    await xadd(redis, busy.commits, partitions=4)
    await xadd(redis, dead.commits[:3], partitions=4)
    async with running(projector_for(redis, db, partitions=4)) as projector:
        await applied(projector, len(busy.commits) + 3)

        [execution] = await rows(db, "executions", busy.execution_id)
        assert execution["status"] == "completed"
        assert execution["workflow_version"] == 2
        assert execution["input"] == {"x": 1}
        assert execution["output"] == {"z": 3}
        assert execution["error"] is None
        assert execution["last_seq"] == busy.seq
        assert execution["started_at"].startswith("2026-05-28T")
        nodes = {r["node_id"]: r for r in await rows(db, "node_runs", busy.execution_id)}
        assert {k: (v["status"], v["attempts"]) for k, v in nodes.items()} == {
            "a": ("completed", 2),
            "b": ("failed", 1),
            "c": ("skipped", 0),
            "d": ("completed", 1),
        }
        assert nodes["a"]["output"] == {"y": 2}
        assert nodes["a"]["error"] is None
        assert nodes["b"]["output"] == {
            "error": {"message": "boom", "type": "HTTPError"},
            "_metadata": {"continuedOnFail": True, "attempts": 1},
        }
        assert nodes["d"]["started_at"] is not None  # from node.waiting
        # The rows are the projection of the core's own fold of the log.
        state = fold(busy.envelopes)
        assert state is not None
        for node_id, folded in state.nodes.items():
            assert (nodes[node_id]["status"], nodes[node_id]["attempts"]) == (folded.status.value, folded.attempt)
        # The archive holds the log's own envelopes, each once.
        expected = [codec.envelope_to_dict(e) for e in busy.envelopes]
        assert await archive(db, busy.execution_id) == _masked(expected, busy.execution_id)

        [failed] = await rows(db, "executions", dead.execution_id)
        assert failed["status"] == "failed"
        assert failed["error"] == {"message": "node 'a' failed", "type": "Error"}
        [letter] = await rows(db, "dead_letters", dead.execution_id)
        assert letter["id"] == "<id>:a:1"
        assert (letter["attempt"], letter["input"], letter["resolved_at"]) == (1, {"edited": False}, None)
        assert letter["error"] == {"message": "boom", "type": "HTTPError"}

        # Retried from the DLQ: the dead letter is resolved, the execution revived and completed.
        await xadd(redis, dead.commits[3:], partitions=4)
        await applied(projector, len(busy.commits) + len(dead.commits))
        [letter] = await rows(db, "dead_letters", dead.execution_id)
        assert letter["resolved_at"] is not None
        [revived] = await rows(db, "executions", dead.execution_id)
        assert (revived["status"], revived["output"], revived["error"]) == ("completed", "done", None)
        [node] = await rows(db, "node_runs", dead.execution_id)
        assert (node["status"], node["attempts"], node["output"]) == ("completed", 2, "done")


async def test_replaying_a_batch_changes_nothing(db: asyncpg.Pool) -> None:
    log = busy_run()
    async with db.acquire() as conn:
        assert await write_commits(conn, log.envelopes[:7]) == 7
        first = await snapshot(db, log.execution_id)
        assert await write_commits(conn, log.envelopes[:7]) == 0
        assert await snapshot(db, log.execution_id) == first
        assert await write_commits(conn, log.envelopes) == log.seq - 7
        whole = await snapshot(db, log.execution_id)
        for start in range(0, log.seq, 3):  # any replayed slice
            assert await write_commits(conn, log.envelopes[start : start + 4]) == 0
        assert await snapshot(db, log.execution_id) == whole


@pytest.mark.parametrize("make_log", [busy_run, dead_letter_run])
@pytest.mark.parametrize("cached", [False, True], ids=["rows-read-back", "fold-cache"])
async def test_a_log_split_anywhere_and_applied_in_any_order_gives_the_same_rows(
    db: asyncpg.Pool, make_log: Callable[[str | None], Log], cached: bool
) -> None:
    reference = make_log(None)
    cache = FoldCache() if cached else None
    async with db.acquire() as conn:
        await write_commits(conn, reference.envelopes)
        expected = await snapshot(db, reference.execution_id)
        for cut in range(1, reference.seq):
            for later_first in (False, True):
                log = make_log(None)
                head, tail = log.envelopes[:cut], log.envelopes[cut:]
                for part in (tail, head) if later_first else (head, tail):
                    await write_commits(conn, part, cache)
                assert await snapshot(db, log.execution_id) == expected, (cut, later_first)
        log = make_log(None)  # one event per batch, newest first: only the last batch folds them all
        for envelope in reversed(log.envelopes):
            await write_commits(conn, [envelope], cache)
        assert await snapshot(db, log.execution_id) == expected
        log = make_log(None)  # one event per batch, in order: each batch folds on from the last one's state
        for envelope in log.envelopes:
            await write_commits(conn, [envelope], cache)
        assert await snapshot(db, log.execution_id) == expected


async def test_the_fold_cache_is_not_used_once_another_projector_moved_the_execution_on(db: asyncpg.Pool) -> None:
    reference, log = busy_run(), busy_run()
    ours, theirs = FoldCache(), FoldCache()
    async with db.acquire() as conn:
        await write_commits(conn, reference.envelopes)
        thirds = [log.envelopes[:4], log.envelopes[4:8], log.envelopes[8:]]
        await write_commits(conn, thirds[0], ours)
        await write_commits(conn, thirds[1], theirs)  # ours now holds a state the rows have moved past
        stale = ours.get(log.execution_id, 4)
        assert stale is not None and stale.seq == 4
        await write_commits(conn, thirds[2], ours)
    assert await snapshot(db, log.execution_id) == await snapshot(db, reference.execution_id)


async def test_events_archived_before_version_3_still_fill_a_gap(db: asyncpg.Pool) -> None:
    """A batch that came early under the old schema left its events as jsonb ``body``; the batch that fills the
    gap folds them as it would the new ``data``."""
    reference, log = busy_run(), busy_run()
    head, tail = log.envelopes[:4], log.envelopes[4:]
    async with db.acquire() as conn:
        await write_commits(conn, reference.envelopes)
        await conn.execute(
            "INSERT INTO events (execution_id, seq, workflow_id, type, at, node_id, body)"
            " SELECT e, s, w, t, to_timestamp(a / 1000.0), n, b::jsonb"
            " FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])"
            " AS u(e, s, w, t, a, n, b)",
            *zip(
                *(
                    (e.execution_id, e.seq, e.workflow_id, e.type, e.at, getattr(e.event, "node_id", None),
                     msgspec.json.encode(codec.envelope_to_dict(e)).decode())
                    for e in tail
                ),
                strict=True,
            ),
        )  # fmt: skip
        assert await write_commits(conn, head) == log.seq
    folded, expected = await snapshot(db, log.execution_id), await snapshot(db, reference.execution_id)
    assert folded == expected  # the rows, and the archive read across both tables


async def test_concurrent_batches_of_one_execution_take_turns(db: asyncpg.Pool) -> None:
    reference, log = busy_run(), busy_run()
    async with db.acquire() as conn:
        await write_commits(conn, reference.envelopes)
    expected = await snapshot(db, reference.execution_id)
    parts = [log.envelopes[i : i + 3] for i in range(0, log.seq, 3)]

    async def write(part: list[Envelope]) -> None:
        async with db.acquire() as conn:
            await write_commits(conn, part)

    await asyncio.gather(*(write(p) for p in reversed(parts)))
    assert await snapshot(db, log.execution_id) == expected


async def test_workflow_registered_then_deleted(redis: aioredis.Redis, db: asyncpg.Pool) -> None:
    def registered(version: int, name: str, at: int) -> WorkflowRegistered:
        definition = {"id": "orders", "name": name, "nodes": [], "triggers": [{"type": "webhook", "config": {}}]}
        return WorkflowRegistered(workflow_id=WF, version=version, name=name, definition=definition, at=at)

    async def workflow() -> dict[str, Any]:
        async with db.acquire() as conn:
            row = await conn.fetchrow("SELECT row_to_json(w)::text FROM workflows w WHERE workflow_id = 'orders'")
        assert row is not None
        decoded: dict[str, Any] = msgspec.json.decode(row[0])
        return decoded

    await xadd_workflow(redis, registered(1, "Orders", T0), registered(2, "Orders v2", T0 + 1000))
    await xadd_workflow(redis, WorkflowDeleted(workflow_id=WF, at=T0 + 2000))
    async with running(projector_for(redis, db)) as projector:
        await applied(projector, 3)
        row = await workflow()
        assert (row["name"], row["latest_version"]) == ("Orders v2", 2)
        assert row["triggers"] == [{"type": "webhook", "config": {}}]
        assert row["created_at"].startswith("2026-05-28T")
        assert row["deleted_at"] is not None
        async with db.acquire() as conn:
            versions = await conn.fetch("SELECT version FROM workflow_versions ORDER BY version")
        assert [v[0] for v in versions] == [1, 2]

        await xadd_workflow(redis, registered(3, "Orders v3", T0 + 3000))  # registering again revives it
        await applied(projector, 4)
        row = await workflow()
        assert (row["name"], row["latest_version"], row["deleted_at"]) == ("Orders v3", 3, None)


async def pending(redis: aioredis.Redis, stream: str) -> int:
    info = await redis.xpending(stream, keys.PROJECTOR_GROUP)
    return int(info["pending"])


async def test_nothing_is_acked_while_the_transaction_fails(redis: aioredis.Redis, db: asyncpg.Pool) -> None:
    log = busy_run()
    stream = keys.for_execution(log.execution_id, 1).events
    async with running(projector_for(redis, db, max_backoff_s=0.05)) as projector:
        await xadd(redis, log.commits[:2])
        await applied(projector, 2)
        async with db.acquire() as conn:
            await conn.execute("ALTER TABLE node_runs RENAME TO node_runs_away")  # every write now fails
        await xadd(redis, log.commits[2:])

        async def failing() -> bool:
            return projector.stats.failing == 1

        await eventually(failing)
        await asyncio.sleep(0.2)  # several failed tries
        assert await projector.backlog() == len(log.commits) - 2  # pending or not delivered yet, none acked
        assert projector.stats.entries == 2
        [execution] = await rows(db, "executions", log.execution_id)
        assert execution["last_seq"] == 3
        async with db.acquire() as conn:
            await conn.execute("ALTER TABLE node_runs_away RENAME TO node_runs")
        await applied(projector, len(log.commits))
        assert await pending(redis, stream) == 0
        assert await projector.backlog() == 0
        assert projector.stats.failing == 0
    async with db.acquire() as conn:
        await write_commits(conn, (reference := busy_run()).envelopes)
    assert await snapshot(db, log.execution_id) == await snapshot(db, reference.execution_id)


class Proxy:
    """A TCP proxy to Postgres that can be cut (every connection dropped, new ones refused) and restored."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_postgres_going_away_loses_nothing(redis: aioredis.Redis, database_url: str, db: asyncpg.Pool) -> None:
    url = urlsplit(database_url)
    assert url.hostname is not None and url.port is not None, "the test needs Postgres over TCP"
    proxy = Proxy(url.hostname, url.port)
    await proxy.start()
    userinfo, at, _ = url.netloc.rpartition("@")
    via_proxy = urlunsplit(url._replace(netloc=f"{userinfo}{at}127.0.0.1:{proxy.port}"))
    log = dead_letter_run()
    async with running(projector_for(redis, via_proxy, max_backoff_s=0.1)) as projector:
        await xadd(redis, log.commits[:3])
        await applied(projector, 3)
        await proxy.cut()
        await xadd(redis, log.commits[3:])
        await asyncio.sleep(0.5)
        assert projector.stats.entries == 3
        assert await projector.backlog() == len(log.commits) - 3
        await proxy.start()
        await applied(projector, len(log.commits))
    [execution] = await rows(db, "executions", log.execution_id)
    assert (execution["status"], execution["last_seq"]) == ("completed", log.seq)
    await proxy.cut()


async def test_takes_over_what_a_dead_projector_left_pending(redis: aioredis.Redis, db: asyncpg.Pool) -> None:
    log = busy_run()
    stream = keys.for_execution(log.execution_id, 1).events
    await xadd(redis, log.commits)
    await redis.xgroup_create(stream, keys.PROJECTOR_GROUP, id="0", mkstream=True)
    # One consumer dies holding the first half; another restarts under its old name holding the second half.
    await redis.xreadgroup(keys.PROJECTOR_GROUP, "dead", {stream: ">"}, count=5)
    await redis.xreadgroup(keys.PROJECTOR_GROUP, "p1", {stream: ">"})
    projector = projector_for(redis, db, claim_idle_ms=300, claim_every_s=0.1)
    async with running(projector):
        await applied(projector, len(log.commits))
        assert await pending(redis, stream) == 0
    [execution] = await rows(db, "executions", log.execution_id)
    assert (execution["status"], execution["last_seq"]) == ("completed", log.seq)


async def test_completed_executions_leave_redis_after_the_retention_once_archived(
    redis: aioredis.Redis, db: asyncpg.Pool
) -> None:
    done, failed, running_log = busy_run(), dead_letter_run(), busy_run()
    for log in (done, failed, running_log):  # what a live system keeps: the log and the snapshot
        execution_keys = keys.for_execution(log.execution_id, 1)
        await redis.rpush(execution_keys.log(log.execution_id), *(codec.encode(e) for e in log.envelopes))
        await redis.hset(execution_keys.snapshot(log.execution_id), "v", str(log.seq))
    await xadd(redis, done.commits + failed.commits[:3] + running_log.commits[:4])
    async with running(projector_for(redis, db, retention_s=3600)) as projector:
        await applied(projector, len(done.commits) + 3 + 4)

    for log, expiring in ((done, True), (failed, False), (running_log, False)):
        execution_keys = keys.for_execution(log.execution_id, 1)
        ttls = [
            await redis.ttl(k)
            for k in (execution_keys.snapshot(log.execution_id), execution_keys.log(log.execution_id))
        ]
        if expiring:  # archived and final: gone after the retention
            assert all(0 < t <= 3600 for t in ttls), ttls
        else:  # failed (its dead letter may be retried) or running: kept
            assert ttls == [-1, -1], ttls
