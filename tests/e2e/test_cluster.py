"""The e2e tests again, on a Redis Cluster of three masters with 16 partitions.

The module's ``system`` is `spane dev` on the session's local cluster (``redis+cluster://``); the tests imported
below from the other e2e modules run here against it unchanged (pytest resolves their ``system`` and ``api`` to this
module's). They cover fan-out and join, retries, delays (the scheduler's timers), sub-workflows, pause, resume and
cancel, live events over SSE from two API processes, a signed webhook, cron fired by two schedulers, and the read
model through the API, a wait node's signal, an execute call and a webhook that wait for the result, and the
all-events stream's resume over 16 partitions: within the resume window nothing
lost or repeated (the projector keeps what it projected for SPANE_EVENTS_RESUME_WINDOW_S), past it an explicit gap
for the partition that lost events. The tests written here check that the partitions really sit on different
masters, that executions spread over them, and that the all-events stream follows every partition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from spane_core.keys import PartitionKeys, for_execution

from spane.embedded_cluster import RedisClusterServer

from .conftest import System, running_system
from .sse import Message, messages
from .support import execute, post_workflow, unique, wait_final
from .test_api_reads import (
    test_an_execution_is_visible_at_once_and_its_history_is_in_order,
    test_executions_are_listed_newest_first_page_by_page,
    test_pause_holds_a_delay_and_resume_finishes_it,
)
from .test_execute_wait import (
    test_a_quick_execution_answers_200_with_its_output,
    test_a_webhook_that_waits_answers_with_the_output_or_502_or_202,
)
from .test_live_events import (
    second_api,
    test_a_reconnect_with_last_event_id_resumes_with_nothing_lost_or_repeated,
    test_a_resume_past_the_window_gets_a_gap_then_the_held_and_live_events,
    test_each_api_process_streams_executions_that_the_other_started,
    test_the_all_events_stream_filters_by_workflow_and_resumes,
    test_the_stream_sends_the_snapshot_then_each_event_and_ends,
)
from .test_signals import test_an_execution_waits_for_its_signal_then_goes_on_with_its_data
from .test_subworkflows import (
    test_pause_resume_and_cancel_cascade_to_the_children_and_theirs,
    test_the_child_s_mapped_output_completes_the_node_and_the_join_after_it_runs,
)
from .test_triggers import (
    test_the_readme_signed_webhook_starts_the_workflow_once,
    test_two_scheduler_processes_fire_a_schedule_of_every_second_once_per_tick,
)
from .test_workflows import (
    test_a_delay_holds_the_branch_then_passes_its_input_on,
    test_a_diamond_passes_each_output_on_and_joins_both_branches,
    test_a_failing_node_is_retried_with_backoff_until_it_succeeds,
    test_a_fan_out_of_100_runs_every_branch_and_the_join_sees_them_all,
    test_a_node_out_of_tries_is_dead_lettered_and_fails_the_execution,
    test_cancel_stops_an_execution_for_good,
    test_pause_holds_new_work_and_resume_finishes_it,
    test_the_same_idempotency_key_starts_one_execution,
)

pytestmark = pytest.mark.e2e

PARTITIONS = 16

__all__ = [  # the imported tests and fixture, run here on the cluster
    "second_api",
    "test_a_delay_holds_the_branch_then_passes_its_input_on",
    "test_a_diamond_passes_each_output_on_and_joins_both_branches",
    "test_a_failing_node_is_retried_with_backoff_until_it_succeeds",
    "test_a_fan_out_of_100_runs_every_branch_and_the_join_sees_them_all",
    "test_a_node_out_of_tries_is_dead_lettered_and_fails_the_execution",
    "test_a_quick_execution_answers_200_with_its_output",
    "test_a_reconnect_with_last_event_id_resumes_with_nothing_lost_or_repeated",
    "test_a_resume_past_the_window_gets_a_gap_then_the_held_and_live_events",
    "test_a_webhook_that_waits_answers_with_the_output_or_502_or_202",
    "test_an_execution_is_visible_at_once_and_its_history_is_in_order",
    "test_an_execution_waits_for_its_signal_then_goes_on_with_its_data",
    "test_cancel_stops_an_execution_for_good",
    "test_each_api_process_streams_executions_that_the_other_started",
    "test_executions_are_listed_newest_first_page_by_page",
    "test_pause_holds_a_delay_and_resume_finishes_it",
    "test_pause_holds_new_work_and_resume_finishes_it",
    "test_pause_resume_and_cancel_cascade_to_the_children_and_theirs",
    "test_the_all_events_stream_filters_by_workflow_and_resumes",
    "test_the_child_s_mapped_output_completes_the_node_and_the_join_after_it_runs",
    "test_the_readme_signed_webhook_starts_the_workflow_once",
    "test_the_same_idempotency_key_starts_one_execution",
    "test_the_stream_sends_the_snapshot_then_each_event_and_ends",
    "test_two_scheduler_processes_fire_a_schedule_of_every_second_once_per_tick",
]


@pytest.fixture(scope="module")
def system(postgres_server: str, servers_dir: Path, redis_cluster: RedisClusterServer) -> Iterator[System]:
    env = {"SPANE_PARTITIONS": str(PARTITIONS)}
    with running_system(postgres_server, servers_dir, redis_cluster.url, "e2e-cluster", env) as system:
        yield system


@pytest.fixture(scope="module")
def masters(redis_cluster: RedisClusterServer) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(redis_cluster.url.replace("redis+cluster://", "redis://"))
    try:
        yield client
    finally:
        client.close()


def master_of(client: redis.RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
    assert node is not None
    return str(node.name)


def test_the_partitions_sit_on_every_master(masters: redis.RedisCluster) -> None:
    nodes = {master_of(masters, PartitionKeys(p).events) for p in range(PARTITIONS)}
    assert len(nodes) == 3, nodes


def test_executions_spread_over_masters_and_each_keeps_its_keys_on_one(
    api: httpx.Client, masters: redis.RedisCluster
) -> None:
    wf = unique("spread")
    post_workflow(api, {"id": wf, "name": "Spread", "nodes": [
        {"id": "a", "type": "transform", "outputs": ["b", "c"]},
        {"id": "b", "type": "transform", "outputs": ["d"]},
        {"id": "c", "type": "transform", "outputs": ["d"]},
        {"id": "d", "type": "transform", "inputs": ["b", "c"]},
    ]})  # fmt: skip
    ids = [execute(api, wf, {"i": i}) for i in range(12)]
    for execution_id in ids:
        assert wait_final(api, execution_id)["status"] == "completed"
    on: set[str] = set()
    for execution_id in ids:
        keys = for_execution(execution_id, PARTITIONS)
        where = {master_of(masters, key) for key in (keys.snapshot(execution_id), keys.log(execution_id), keys.tasks)}
        assert len(where) == 1, where  # one slot per partition, so one master
        assert masters.exists(keys.snapshot(execution_id)) == 1
        on |= where
    assert len(on) >= 2, on  # 12 executions over 16 partitions on 3 masters


def test_the_all_events_stream_follows_every_partition(api: httpx.Client, masters: redis.RedisCluster) -> None:
    wf = unique("everywhere")
    post_workflow(api, {"id": wf, "name": "Everywhere", "nodes": [{"id": "a", "type": "transform"}]})
    completed: set[str] = set()
    ready = threading.Event()
    count = 12

    def listen() -> None:
        with api.stream("GET", "/api/events", params={"workflowId": wf}) as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            ready.set()
            message: Message
            for message in messages(lines):
                if message.event == "execution.completed":
                    completed.add(str(message.data["executionId"]))
                    if len(completed) == count:
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(10)
    ids = {execute(api, wf, {}) for _ in range(count)}
    listener.join(30)
    assert not listener.is_alive()
    assert completed == ids
    partitions = {for_execution(i, PARTITIONS).partition for i in ids}
    assert len({master_of(masters, PartitionKeys(p).events) for p in partitions}) >= 2
