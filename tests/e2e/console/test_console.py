"""The web console in a real browser against a real `spane dev`: list, start, watch live, steer, dead letters."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import System
from tests.e2e.console.conftest import screenshot, wait_listed
from tests.e2e.support import execute, post_workflow, run_failing_limited_workflow, unique, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_MS = 30_000


def _delayed(workflow_id: str, ms: int) -> dict[str, object]:
    return {
        "id": workflow_id,
        "name": "Console demo",
        "nodes": [
            {"id": "start", "type": "transform", "outputs": ["wait", "label"]},
            {"id": "wait", "type": "delay", "config": {"ms": ms}, "outputs": ["join"]},
            {"id": "label", "type": "transform", "config": {"set": {"seen": True}}, "outputs": ["join"]},
            {"id": "join", "type": "transform"},
        ],
        "triggers": [{"type": "webhook", "config": {"path": f"{workflow_id}-hook", "method": "POST"}}],
    }


def test_a_workflow_registered_by_the_api_is_listed_started_from_the_page_and_completes_live(
    page: Page, system: System, api: httpx.Client
) -> None:
    workflow_id = unique("console")
    post_workflow(api, _delayed(workflow_id, 1500))
    wait_listed(api, workflow_id)
    page.goto(system.url + "/")
    row = page.locator(f'#workflows tr[data-workflow="{workflow_id}"]')
    expect(row).to_contain_text("Console demo", timeout=TIMEOUT_MS)
    expect(row).to_contain_text(f"webhook POST /api/webhooks/{workflow_id}-hook")
    screenshot(page, "workflows")

    row.get_by_role("link", name=workflow_id).click()
    expect(page.locator('.dag [data-node="join"]')).to_be_visible()
    expect(page.locator(".dag path.edge")).to_have_count(4)
    screenshot(page, "workflow")

    editor = page.locator("#start-input")
    editor.fill("{not json")
    page.get_by_role("button", name="Start execution").click()
    expect(page.locator("#start-input-error")).to_contain_text("Not valid JSON")  # checked before sending
    expect(page).to_have_url(re.compile(rf"#/workflows/{workflow_id}$"))

    editor.fill('{"name": "ada"}')
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("button", name="Start execution").click()
    expect(page).to_have_url(re.compile(r"#/executions/[^/]+$"))
    join = page.locator('.dag [data-node="join"]')
    expect(join).not_to_have_attribute("data-status", "completed")  # the delay holds it back at first
    expect(join).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    expect(page.locator("#main")).to_have_attribute("data-status", "completed")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
    expect(page.locator("#timeline")).to_contain_text("execution.completed")
    expect(page.locator("#main")).not_to_contain_text("nullnull")  # absent parts render as nothing
    expect(page.locator('#nodes tr[data-node="wait"]')).to_contain_text("delay")
    screenshot(page, "execution")

    execution_id = page.url.rsplit("/", 1)[-1]
    page.goto(f"{system.url}/#/executions?workflowId={workflow_id}")
    expect(page.locator(f'#executions tr[data-execution="{execution_id}"]')).to_contain_text("completed")


def test_pause_and_resume_from_the_page_and_a_refusal_shows_why(page: Page, system: System, api: httpx.Client) -> None:
    workflow_id = unique("console-steer")
    post_workflow(api, _delayed(workflow_id, 2500))
    execution_id = execute(api, workflow_id, {})
    page.goto(f"{system.url}/#/executions/{execution_id}")
    main = page.locator("#main")

    page.get_by_role("button", name="Pause").click()
    expect(main).to_have_attribute("data-status", "paused", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Pause").click()  # paused already: the server refuses with a 409
    expect(page.get_by_role("alert")).to_contain_text("pause refused")

    page.get_by_role("button", name="Resume").click()
    expect(main).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    assert wait_final(api, execution_id)["status"] == "completed"


def test_an_execution_shows_its_options_and_a_rerun_links_to_its_origin(
    page: Page, system: System, api: httpx.Client
) -> None:
    workflow_id = unique("console-options")
    post_workflow(api, _delayed(workflow_id, 10))
    execution_id = execute(api, workflow_id, {}, priority=8, timeoutMs=600_000)
    assert wait_final(api, execution_id)["status"] == "completed"
    page.goto(f"{system.url}/#/executions/{execution_id}")
    options = page.locator("#options")
    expect(options).to_contain_text("priority 8", timeout=TIMEOUT_MS)
    expect(options).to_contain_text("deadline")
    rerun = api.post(f"/api/executions/{execution_id}/rerun", json={})
    assert rerun.status_code == 202, rerun.text
    page.goto(f"{system.url}/#/executions/{rerun.json()['executionId']}")
    expect(page.locator("#options")).to_contain_text(re.compile("rerun of", re.IGNORECASE), timeout=TIMEOUT_MS)
    page.locator("#options").get_by_role("link", name=execution_id).click()
    expect(page).to_have_url(re.compile(rf"#/executions/{execution_id}$"))


def test_an_execution_is_rerun_from_a_node_on_its_page(page: Page, system: System, api: httpx.Client) -> None:
    workflow_id = unique("console-rerun")
    post_workflow(api, _delayed(workflow_id, 10))
    execution_id = execute(api, workflow_id, {"name": "ada"})
    assert wait_final(api, execution_id)["status"] == "completed"
    page.goto(f"{system.url}/#/executions/{execution_id}")
    expect(page.locator("#main")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    page.locator("#rerun-from").select_option("label")
    page.get_by_role("button", name="Re-run").click()
    expect(page).not_to_have_url(re.compile(rf"#/executions/{execution_id}$"), timeout=TIMEOUT_MS)
    expect(page.locator("#main")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    expect(page.locator("#options")).to_contain_text(re.compile("rerun of", re.IGNORECASE))
    new_id = page.url.rsplit("/", 1)[-1]
    history = api.get(f"/api/executions/{new_id}/history").json()["events"]
    reused = {e["nodeId"] for e in history if e["type"] == "node.completed" and e.get("reusedFrom") == execution_id}
    assert reused == {"start", "wait"}  # only "label" and what follows ran again


def test_a_waiting_node_s_signal_is_sent_from_the_page_with_its_data(
    page: Page, system: System, api: httpx.Client
) -> None:
    workflow_id = unique("console-signal")
    nodes = [{"id": "approve", "type": "wait", "config": {"signal": "approval"}}]
    post_workflow(api, {"id": workflow_id, "name": "Approval", "nodes": nodes})
    execution_id = execute(api, workflow_id, {})
    page.goto(f"{system.url}/#/executions/{execution_id}")
    card = page.locator("[data-signal-node=approve]")
    expect(card).to_contain_text('waits for the signal "approval"', timeout=TIMEOUT_MS)
    editor = page.get_by_label('Data of the signal "approval" (JSON)')
    editor.fill("{not json")
    page.get_by_role("button", name="Send approval").click()
    expect(card).to_contain_text("Not valid JSON")  # checked in the page; nothing was sent
    editor.fill('{"approved": true}')
    page.get_by_role("button", name="Send approval").click()
    expect(page.locator("#main")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    expect(card).to_have_count(0)  # the node no longer waits
    assert wait_final(api, execution_id)["output"] == {"approved": True}


def test_a_failed_execution_offers_no_signal_form_for_a_node_left_waiting(
    page: Page, system: System, api: httpx.Client
) -> None:
    # Another branch failed the execution: its wait node still shows as waiting, but a signal is refused (409).
    workflow_id = unique("console-signal-failed")
    nodes = [
        {"id": "s", "type": "transform", "outputs": ["f", "approve"]},
        {"id": "f", "type": "http", "config": {"url": "http://127.0.0.1:1/"}, "retryPolicy": {"maxAttempts": 1}},
        {"id": "approve", "type": "wait", "config": {"signal": "approval"}},
    ]
    post_workflow(api, {"id": workflow_id, "name": "Approval", "nodes": nodes})
    execution_id = execute(api, workflow_id, {})
    final = wait_final(api, execution_id)
    assert final["status"] == "failed" and final["nodes"]["approve"]["status"] == "waiting"
    page.goto(f"{system.url}/#/executions/{execution_id}")
    expect(page.locator("#main")).to_have_attribute("data-status", "failed", timeout=TIMEOUT_MS)
    expect(page.locator("[data-signal-node]")).to_have_count(0)


def test_a_workflow_is_registered_and_edited_from_the_pages_and_problems_show_by_path(
    page: Page, system: System, api: httpx.Client
) -> None:
    workflow_id = unique("console-new")
    other = unique("console-other")
    post_workflow(api, _delayed(other, 10))  # with workflows listed, the form starts folded
    wait_listed(api, other)
    page.goto(f"{system.url}/#/workflows")
    expect(page.locator("#workflows")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("summary", has_text="Register a workflow").click()
    editor = page.locator("#new-definition")
    expect(editor).to_be_visible()
    cycle = {"id": workflow_id, "name": "New", "nodes": [
        {"id": "a", "type": "transform", "outputs": ["b"]}, {"id": "b", "type": "transform", "outputs": ["a"]},
    ]}  # fmt: skip
    editor.fill(json.dumps(cycle))
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#new-definition-form [role=alert]")).to_contain_text("cycle", timeout=TIMEOUT_MS)

    good = {"id": workflow_id, "name": "New", "nodes": [{"id": "a", "type": "transform", "config": {"set": {"v": 1}}}]}
    editor.fill(json.dumps(good))
    page.get_by_role("button", name="Register").click()
    expect(page).to_have_url(re.compile(rf"#/workflows/{workflow_id}\?version=1$"), timeout=TIMEOUT_MS)
    expect(page.locator('.dag [data-node="a"]')).to_be_visible()

    page.locator("summary", has_text="Edit: register a new version").click()
    edited = {**good, "name": "New, edited"}
    page.locator("#edit-definition").fill(json.dumps(edited))
    page.locator("#edit-definition-form").get_by_role("button", name="Register").click()
    expect(page).to_have_url(re.compile(rf"#/workflows/{workflow_id}\?version=2$"), timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="New, edited")).to_be_visible()
    assert api.get(f"/api/workflows/{workflow_id}").json()["version"] == 2


def test_the_pages_fit_a_phone_and_work_from_the_keyboard(page: Page, system: System, api: httpx.Client) -> None:
    workflow_id = unique("console-phone")
    post_workflow(api, _delayed(workflow_id, 1))
    wait_listed(api, workflow_id)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(system.url + "/")
    expect(page.locator(f'#workflows tr[data-workflow="{workflow_id}"]')).to_be_visible(timeout=TIMEOUT_MS)
    # Wide tables scroll inside their box; the page itself never gets wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.keyboard.press("Tab")  # the skip link first, then the sections
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Executions")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()


def test_a_dead_letter_is_retried_with_edited_input_and_its_execution_completes(
    page: Page, system: System, api: httpx.Client
) -> None:
    if api.get("/api/dlq").status_code == 404:
        pytest.skip("this build has no dead-letter API (/api/dlq, issue 8)")
    workflow_id = unique("console-dlq")
    post_workflow(api, {"id": workflow_id, "name": "DLQ", "nodes": [{"id": "check", "type": "needs-ok"}]})
    execution_id = execute(api, workflow_id, {"ok": False})
    assert wait_final(api, execution_id)["status"] == "failed"

    page.goto(f"{system.url}/#/dlq?executionId={execution_id}")
    card = page.locator(f'[data-dead-letter] >> text="{execution_id}"').locator("xpath=ancestor::article")
    expect(card).to_contain_text("is not ok", timeout=TIMEOUT_MS)
    screenshot(page, "dead-letters")
    card.locator("textarea").fill('{"ok": true}')
    card.get_by_role("button", name="Retry").click()
    expect(card).to_contain_text("Retried")
    card.get_by_role("link", name="Open the execution").click()
    expect(page.locator("#main")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    expect(page.locator('#nodes tr[data-node="check"]')).to_contain_text("completed")


def test_the_operations_page_shows_breakers_buckets_and_schedules_and_resets_a_breaker(
    page: Page, system: System, api: httpx.Client
) -> None:
    workflow_id = unique("console-ops")
    host = "127.0.0.78"  # a host of this test alone
    run_failing_limited_workflow(api, workflow_id, host, 50)

    page.goto(system.url + "/")
    page.get_by_role("link", name="Operations").click()
    breaker = page.locator(f'#breakers tr[data-breaker="http:{host}"]')
    expect(breaker).to_contain_text("open", timeout=TIMEOUT_MS)
    expect(page.locator(f'#buckets tr[data-bucket="node:{workflow_id}/call"]')).to_contain_text("50 per 1000 ms")
    expect(page.locator(f'#schedules tr[data-schedule="{workflow_id}"]')).to_contain_text("Europe/Paris")
    screenshot(page, "operations")
    breaker.get_by_role("button", name="Reset").click()
    expect(page.locator(f'#breakers tr[data-breaker="http:{host}"] .badge')).to_have_text("closed")
    assert (
        next(b for b in api.get("/api/circuit-breakers").json()["items"] if b["name"] == f"http:{host}")["state"]
        == "closed"
    )
