"""With SPANE_API_TOKEN set, the console shows nothing but its login form until it is given the token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from spane.embedded import free_port
from tests.e2e.conftest import System, start_spane, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "console-test-token"


@pytest.fixture(scope="module")
def guarded_api(system: System, servers_dir: Path) -> Iterator[str]:
    """A second API process, with a token, over the same Redis and Postgres as the e2e system."""
    port = free_port()
    env = {
        "SPANE_REDIS_URL": system.redis_url,
        "SPANE_DATABASE_URL": system.database_url,
        "SPANE_PORT": str(port),
        "SPANE_API_TOKEN": TOKEN,
        "SPANE_PLUGINS": "tests.e2e.plugins",
    }
    proc = start_spane(["api"], env, servers_dir / "console-api.log", ready_url=f"http://127.0.0.1:{port}/ready")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_only_the_login_form_is_shown_until_the_token_is_given(page: Page, guarded_api: str) -> None:
    page.goto(guarded_api + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#workflows")).to_have_count(0)

    page.get_by_label("API token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    expect(page.locator("#nav")).to_be_hidden()

    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.reload()  # kept for the browser session
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
