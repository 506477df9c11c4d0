"""The Makefile's targets as the README tells a newcomer to use them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from spane_core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_dev_listens_where_spane_port_says(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "SPANE_PORT": "8123"}
    dry = subprocess.run(["make", "-n", "dev"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    [command] = [line for line in dry.stdout.splitlines() if "spane dev" in line]
    assert "--port" not in command, command  # a port given here would win over SPANE_PORT
    monkeypatch.setenv("SPANE_PORT", "8123")
    assert Settings().port == 8123
