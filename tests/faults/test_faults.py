"""The fault suite: the services run as processes of their own under a steady load of executions while they are
killed (-9) at random, Redis is killed and restarted on its AOF, Postgres is stopped, and each service is SIGTERMed.
After each: every accepted execution completes, every node completed exactly once in its log, and the read model
equals the log.

The normal test run (CI) runs a short version; ``make faults`` (SPANE_FAULTS=long) the long one, whose figures are
in RELIABILITY.md. SPANE_FAULTS_REPORT=PATH writes them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from spane.embedded import PostgresServer

from .load import Load, Verdict, verify, workflow
from .processes import SERVICES, FaultSystem

pytestmark = [pytest.mark.faults, pytest.mark.slow]

LONG = os.environ.get("SPANE_FAULTS") == "long"


@dataclass(frozen=True)
class Profile:
    kill_for_s: float  # how long services are killed at random
    kill_every_s: float
    postgres_down_s: float
    redis_kills: int
    term_rounds: int  # SIGTERMs of every service, one after the other


PROFILE = Profile(180, 3, 30, 3, 2) if LONG else Profile(9, 1.5, 4, 1, 1)
FIGURES: list[dict[str, Any]] = []


def _run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture(scope="module")
def system(servers_dir: Path) -> Iterator[FaultSystem]:
    workdir = servers_dir / "faults"
    workdir.mkdir()
    postgres = PostgresServer(workdir / "postgres", fast=True).start()
    faults = FaultSystem(workdir, postgres, postgres.url)
    try:
        faults.start()
        yield faults
    finally:
        faults.stop()
        postgres.stop()
        if report := os.environ.get("SPANE_FAULTS_REPORT"):
            Path(report).write_text(json.dumps({"profile": asdict(PROFILE), "scenarios": FIGURES}, indent=2) + "\n")
        for row in FIGURES:
            print(row)


def _register(system: FaultSystem, workflow_id: str) -> None:
    response = httpx.post(f"{system.url}/api/workflows", json=workflow(workflow_id), timeout=30)
    assert response.status_code in (200, 201), response.text


def _settle(system: FaultSystem, load: Load, scenario: str, faults: int, within: float = 120.0) -> Verdict:
    verdict: Verdict = _run(verify(system.url, system.database_url, load, within))
    FIGURES.append({
        "scenario": scenario, "faults": faults, "accepted": verdict.accepted, "completed": verdict.completed,
        "lost": len(verdict.lost), "duplicated": len(verdict.duplicated), "mismatched": len(verdict.mismatched),
        "retried_answers": dict(load.refused), "unreachable": load.unreachable,
    })  # fmt: skip
    problems = {"lost": verdict.lost[:5], "duplicated": verdict.duplicated[:5], "mismatched": verdict.mismatched[:5]}
    assert not any(problems.values()), f"{scenario}: {problems}\n{system.logs()}"
    assert verdict.completed == verdict.accepted > 0
    return verdict


def _victims(rng: random.Random) -> Iterator[str]:
    """Services in random order, each once per round: a short run still kills every one of them."""
    while True:
        order = list(SERVICES)
        rng.shuffle(order)
        yield from order


def test_random_kill9s_of_every_service(system: FaultSystem) -> None:
    _register(system, "faults-kills")
    victims = _victims(random.Random(13))
    kills = 0
    with Load(system.url, "faults-kills") as load:
        deadline = time.monotonic() + PROFILE.kill_for_s
        while time.monotonic() < deadline:
            time.sleep(PROFILE.kill_every_s)
            victim = next(victims)
            system.kill9(victim)
            kills += 1
            time.sleep(0.2)
            system.launch(victim)
    _settle(system, load, "kill -9 a random service and restart it", kills)


def test_redis_killed_and_restarted_on_its_aof(system: FaultSystem) -> None:
    _register(system, "faults-redis")
    with Load(system.url, "faults-redis") as load:
        for _ in range(PROFILE.redis_kills):
            time.sleep(1.5)
            system.redis.kill9()
            time.sleep(1.0)
            system.redis.start()
        time.sleep(1.5)
    assert all(system.alive().values()), f"a service died with Redis: {system.alive()}\n{system.logs()}"
    _settle(system, load, "kill -9 Redis, restart it on its AOF (appendfsync always)", PROFILE.redis_kills)


def test_postgres_stopped_the_api_accepts_and_the_projector_catches_up(system: FaultSystem) -> None:
    _register(system, "faults-postgres")
    with Load(system.url, "faults-postgres") as load, httpx.Client(base_url=system.url, timeout=10) as client:
        time.sleep(1.0)
        system.postgres.stop()
        try:
            before = len(load.accepted)
            stopped = time.monotonic()
            listing = client.get("/api/executions")
            assert listing.status_code == 503, listing.text
            assert listing.headers["content-type"].startswith("application/problem+json")
            assert "unavailable" in listing.json()["detail"]
            assert client.get("/api/workflows").status_code == 503
            time.sleep(max(0.0, PROFILE.postgres_down_s - (time.monotonic() - stopped)))
            during = [eid for key, eid in list(load.accepted.items())[before:]]
            assert during, "the API accepted no execution while Postgres was down"
            read = client.get(f"/api/executions/{during[-1]}")  # from Redis
            assert read.status_code == 200 and read.json()["workflowId"] == "faults-postgres", read.text
        finally:
            system.postgres.start()
        time.sleep(1.0)
    assert all(system.alive().values()), f"a service died with Postgres: {system.alive()}\n{system.logs()}"
    _settle(system, load, f"Postgres stopped for {PROFILE.postgres_down_s:g} s", 1)


def test_sigterm_drains_each_service_and_nothing_waits_for_the_visibility_timeout(system: FaultSystem) -> None:
    # Workers that reclaim only after an hour: a task left behind by a stopping worker would never complete here.
    for name in ("worker-1", "worker-2"):
        assert system.terminate(name) == 0
        system.launch(name, SPANE_TASK_VISIBILITY_TIMEOUT_MS=str(3_600_000))
    _register(system, "faults-sigterm")
    terms = 0
    with Load(system.url, "faults-sigterm") as load:
        for _ in range(PROFILE.term_rounds):
            for name in SERVICES:
                time.sleep(1.0)
                code = system.terminate(name)
                assert code == 0, f"{name} exited with {code} on SIGTERM\n{system.logs()}"
                terms += 1
                system.launch(name)
        time.sleep(1.0)
    _settle(system, load, "SIGTERM each service (workers reclaim only after 1 h)", terms, within=60.0)
