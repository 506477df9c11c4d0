"""SPANE_API_TOKEN set but blank is refused rather than read as "no token" (the API would be open)."""

from __future__ import annotations

import pydantic
import pytest
from spane_core.settings import Settings


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_token_is_refused(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("SPANE_API_TOKEN", blank)
    with pytest.raises(pydantic.ValidationError, match="unset SPANE_API_TOKEN to run without a token"):
        Settings()


def test_unset_means_no_token_and_a_value_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANE_API_TOKEN", raising=False)
    assert Settings().api_token is None
    monkeypatch.setenv("SPANE_API_TOKEN", "t0ken")
    token = Settings().api_token
    assert token is not None and token.get_secret_value() == "t0ken"
