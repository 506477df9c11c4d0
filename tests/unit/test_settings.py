"""Settings refuse values that would break a guarantee, with a message saying why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from spane_core.settings import IDEMPOTENCY_KEY_TTL_S, Settings


def test_retention_is_forever_or_outlives_idempotency_keys() -> None:
    assert Settings(execution_retention_s=0).execution_retention_s == 0
    assert Settings(execution_retention_s=IDEMPOTENCY_KEY_TTL_S).execution_retention_s == IDEMPOTENCY_KEY_TTL_S
    with pytest.raises(ValidationError, match="idempotency key"):
        Settings(execution_retention_s=60)


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_EXECUTION_RETENTION_S", "172800")
    assert Settings().execution_retention_s == 172800
