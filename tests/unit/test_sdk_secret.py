"""``spane_core.sdk.secret``: a custom node type reads the worker's secrets as http templates do."""

from __future__ import annotations

from pathlib import Path

import pytest
from spane_core.errors import NonRetryableError
from spane_core.sdk import secret
from spane_core.secrets import MissingSecret


def test_a_secret_comes_from_the_environment_else_from_the_secrets_dir_read_at_each_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANE_SECRETS_DIR", str(tmp_path))
    (tmp_path / "SLACK_TOKEN").write_text("xoxb-1\n")
    assert secret("SLACK_TOKEN") == "xoxb-1"
    (tmp_path / "SLACK_TOKEN").write_text("xoxb-2\n")  # rotated: the next call reads the new one
    assert secret("SLACK_TOKEN") == "xoxb-2"
    monkeypatch.setenv("SPANE_SECRET_SLACK_TOKEN", "from-env")
    assert secret("SLACK_TOKEN") == "from-env"


def test_a_missing_secret_or_a_name_that_is_a_path_fails_the_node_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANE_SECRETS_DIR", str(tmp_path / "secrets"))
    (tmp_path / "outside").write_text("not a secret")
    with pytest.raises(MissingSecret, match="the secret NOPE is not set on this worker") as missing:
        secret("NOPE")
    assert isinstance(missing.value, NonRetryableError)
    for name in ("../outside", "a/b", "", "1ABC"):
        with pytest.raises(MissingSecret, match="is not a secret's name"):
            secret(name)
