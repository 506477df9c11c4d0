"""The README's example runs as written against a live system."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import System

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs_and_prints_the_documented_result(system: System) -> None:
    section = README.read_text().split("## Example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's Example section has no python block"
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        env={**os.environ, "SPANE_URL": system.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] in ("{'workflowId': 'hello-diamond', 'version': 1}",)
    assert lines[-1] == "completed {'greet': 'hello ada', 'shout': 'ADA'}"
