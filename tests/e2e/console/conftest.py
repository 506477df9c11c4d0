"""Fixtures of the console tests: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response, sync_playwright

from tests.e2e.conftest import System

CHROMIUM = os.environ.get("SPANE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where to save screenshots of the main pages (docs/ keeps the ones the README shows); unset: none are taken.
SCREENSHOTS = os.environ.get("SPANE_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser_context(system: System) -> Iterator[BrowserContext]:
    """Per module, and after the system is up: Playwright's sync API holds the thread's event loop while it runs,
    so nothing else may start one meanwhile (the system's setup does)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps-test` installs Debian's chromium")
    profile = tempfile.mkdtemp(prefix="spane-chromium-")  # a fresh --user-data-dir
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1280, "height": 900}
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A fresh tab; the test fails if a script threw or logged an error, if the server answered 5xx, or if a page
    or asset was missing. (Chromium also logs every 4xx answer of the API as an error: a 409 or a 401 that the
    console shows to its user is expected, so those lines are judged by the response handler instead.)"""
    tab = browser_context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def on_response(response: Response) -> None:
        path = urlsplit(response.url).path
        if response.status >= 500 or (response.status == 404 and not path.startswith("/api/")):
            errors.append(f"{response.status} {response.url}")

    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        tab.close()
    assert errors == [], f"the console logged errors: {errors}"


def wait_listed(api: httpx.Client, workflow_id: str, timeout: float = 30.0) -> None:
    """Until the read model lists the workflow (the projector stores it shortly after it is registered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(w["workflowId"] == workflow_id for w in api.get("/api/workflows").json()["items"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"workflow {workflow_id} was not listed in {timeout} s")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"console-{name}.png"), full_page=True)
