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


def test_history_retention_is_forever_by_default_or_outlives_idempotency_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANE_HISTORY_RETENTION_S", raising=False)
    assert Settings().history_retention_s == 0
    monkeypatch.setenv("SPANE_HISTORY_RETENTION_S", str(30 * 24 * 3600))
    assert Settings().history_retention_s == 30 * 24 * 3600
    for bad in (3600, -1):
        with pytest.raises(ValidationError, match="keep forever"):
            Settings(history_retention_s=bad)


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_EXECUTION_RETENTION_S", "172800")
    assert Settings().execution_retention_s == 172800


def test_the_events_resume_window_is_zero_or_more_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANE_EVENTS_RESUME_WINDOW_S", raising=False)
    assert Settings().events_resume_window_s == 60
    assert Settings(events_resume_window_s=0).events_resume_window_s == 0
    monkeypatch.setenv("SPANE_EVENTS_RESUME_WINDOW_S", "300")
    assert Settings().events_resume_window_s == 300
    monkeypatch.setenv("SPANE_EVENTS_RESUME_WINDOW_S", "-1")
    with pytest.raises(ValidationError, match="must be a number of seconds, 0 or more") as raised:
        Settings()
    assert raised.value.errors()[0]["loc"] == ("events_resume_window_s",)


def test_limits_come_from_the_environment_as_json_and_bad_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_CIRCUIT_BREAKERS", '{"http": {"failureThreshold": 10}}')
    monkeypatch.setenv("SPANE_CONCURRENCY_LIMITS", '{"enrich-user": 10}')
    settings = Settings()
    assert settings.circuit_breakers == {"http": {"failureThreshold": 10}}
    assert settings.concurrency_limits == {"enrich-user": 10}
    for name in ("SPANE_CIRCUIT_BREAKERS", "SPANE_RATE_LIMITS", "SPANE_CONCURRENCY_LIMITS"):
        monkeypatch.setenv(name, "{http: 10}")
        # A ValidationError (which `spane` prints as one line naming the variable), not a SettingsError traceback.
        with pytest.raises(ValidationError, match="not JSON") as raised:
            Settings()
        assert raised.value.errors()[0]["loc"] == (name.removeprefix("SPANE_").lower(),)
        monkeypatch.delenv(name)


def test_the_log_level_is_a_known_level_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"
    monkeypatch.setenv("SPANE_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        Settings()
