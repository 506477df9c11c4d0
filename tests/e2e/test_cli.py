"""The `spane` command answers bad settings with one readable line each, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spane.embedded import free_port

from .conftest import System

pytestmark = pytest.mark.e2e


def test_bad_settings_are_named_with_why_and_exit_2() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SPANE_PORT": "abc",
        "SPANE_EXECUTION_RETENTION_S": "60",
        "SPANE_RATE_LIMITS": "{http: 1}",
        "SPANE_LOG_LEVEL": "LOUD",
    }
    done = subprocess.run(
        [sys.executable, "-m", "spane", "projector"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("spane: SPANE_PORT=abc: ") and "integer" in lines[0]
    assert lines[1].startswith("spane: SPANE_EXECUTION_RETENTION_S=60: must be 0")
    assert lines[2].startswith("spane: SPANE_RATE_LIMITS={http: 1}: not JSON")
    assert lines[3].startswith("spane: SPANE_LOG_LEVEL=LOUD: must be one of DEBUG, INFO")


def test_an_unknown_status_filter_names_the_statuses_there_are() -> None:
    env = {"PATH": "/usr/bin:/bin", "SPANE_URL": "http://127.0.0.1:9"}  # refused before any request
    done = subprocess.run(
        [sys.executable, "-m", "spane", "executions", "ls", "--status", "sleeping"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "spane: --status 'sleeping' is not one of scheduled, running, paused, completed, failed, cancelled"
    )


def test_dev_says_it_is_up_once_the_api_listens_and_not_when_a_setting_stops_it(system: System) -> None:
    # The session's `spane dev` said so, once the API answered.
    assert "SPANE is up: http://127.0.0.1:" in system.log.read_text()
    env = {
        **os.environ,
        "SPANE_REDIS_URL": system.redis_url,
        "SPANE_DATABASE_URL": system.database_url,
        "SPANE_PORT": str(free_port()),
        "SPANE_PLUGINS": "no_such_plugin_module",
    }
    done = subprocess.run([sys.executable, "-m", "spane", "dev"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no_such_plugin_module" in done.stderr and "SPANE is up" not in done.stderr
