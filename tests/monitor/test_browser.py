"""The dashboard in headless Chromium (Debian's /usr/bin/chromium) against a real server."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evertask_abstractions import QueuedTaskStatus

from . import tasks
from .harness import BASE, PASSWORD, USERNAME, ThreadedServer, build_host, seed, wait_status

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = os.environ.get("EVERTASK_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
S = QueuedTaskStatus


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    directory = tmp_path_factory.mktemp("browser")
    live = ThreadedServer(lambda: build_host("sqlite", directory), seed).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: ThreadedServer) -> Iterator[Any]:
    """A fresh browser context, logged in, on the overview page."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(5000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.goto(f"{server.url}{BASE}/")
    tab.fill("input[name=username]", USERNAME)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_selector("[data-testid=kpi-total]")
    try:
        yield tab
    finally:
        context.close()
    violations = [e for e in errors if "Content Security Policy" in e]
    assert not violations, violations


def expect(locator: Any) -> Any:
    return playwright_api.expect(locator)


def test_login_is_required_and_a_wrong_password_is_refused(
    browser: Any, server: ThreadedServer
) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(f"{server.url}{BASE}/tasks")
        tab.fill("input[name=username]", USERNAME)
        tab.fill("input[name=password]", "wrong")
        tab.click("button[type=submit]")
        expect(tab.get_by_test_id("login-error")).to_contain_text("Invalid username or password")
        tab.fill("input[name=password]", PASSWORD)
        tab.click("button[type=submit]")
        expect(tab.get_by_test_id("task-row").first).to_be_visible()  # lands where it was going
    finally:
        context.close()


def test_overview_counts_equal_the_storage(page: Any, server: ThreadedServer) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    storage = server.host.storage
    assert storage is not None
    counts = server.call(lambda: storage.count_by_status(midnight))
    expect(page.get_by_test_id("kpi-total")).to_have_text(str(sum(counts.values())))
    expect(page.get_by_test_id("kpi-failed")).to_have_text(str(counts.get(S.FAILED, 0)))
    for status in S:
        row = page.get_by_test_id(f"status-count-{status.value}")
        expect(row.get_by_test_id("value")).to_have_text(str(counts.get(status, 0)))
    expect(page.get_by_test_id("connection")).to_contain_text("Live")


def test_filter_the_task_list_by_status(page: Any) -> None:
    page.click("a.nav-link:has-text('Tasks')")
    expect(page.get_by_test_id("task-row").first).to_be_visible()
    page.get_by_test_id("filter-status-Failed").click()
    rows = page.get_by_test_id("task-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("pager-info")).to_contain_text("3 total")
    for i in range(3):
        expect(rows.nth(i).get_by_test_id("status")).to_have_text("Failed")
    assert "statuses=Failed" in page.url
    page.get_by_test_id("sort-type").click()
    expect(rows).to_have_count(3)


def test_a_failed_task_shows_its_exception_and_captured_logs(
    page: Any, server: ThreadedServer
) -> None:
    failed = server.seeded.failed[2]
    page.goto(f"{server.url}{BASE}/tasks/{failed}")
    expect(page.get_by_test_id("task-exception")).to_contain_text("ValueError: boom 2")
    lines = page.get_by_test_id("log-line")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("about to fail")
    expect(lines.nth(1)).to_contain_text("failing with boom 2")
    page.get_by_test_id("log-level").select_option("Warning")
    expect(lines).to_have_count(1)
    page.click("button[role=tab]:has-text('Status history')")
    expect(page.get_by_test_id("status-history")).to_contain_text("Failed")


def test_dispatched_task_events_appear_on_the_live_page_within_a_second(
    page: Any, server: ThreadedServer
) -> None:
    page.click("a.nav-link:has-text('Live')")
    expect(page.get_by_test_id("live-status")).to_contain_text("Connected")
    tid = server.call(lambda: server.host.dispatcher.dispatch(tasks.Work(n=42)))
    events = page.locator(f"[data-testid=live-event][data-task-id='{tid}']")
    expect(events.first).to_be_visible(timeout=1000)
    expect(events.filter(has_text="completed").first).to_be_visible(timeout=1000)
    page.get_by_test_id("live-pause").click()
    server.call(lambda: server.host.dispatcher.dispatch(tasks.Boom(message="while paused")))
    expect(page.get_by_test_id("live-pause")).to_contain_text(re.compile(r"Resume \(\d+ new\)"))
    page.get_by_test_id("live-pause").click()
    page.click("button:has-text('Error')")
    expect(page.get_by_test_id("live-event").first).to_contain_text("Error")
    page.get_by_test_id("live-clear").click()
    expect(page.get_by_test_id("live-event")).to_have_count(0)


def test_cancel_a_scheduled_task_and_retry_a_failed_one(page: Any, server: ThreadedServer) -> None:
    host = server.host
    scheduled = server.call(lambda: host.dispatcher.dispatch(tasks.Work(n=77), timedelta(hours=3)))
    page.goto(f"{server.url}{BASE}/tasks/{scheduled}")
    expect(page.locator("h1").get_by_test_id("status")).to_have_text("WaitingQueue")
    page.get_by_test_id("cancel-task").click()
    expect(page.locator("h1").get_by_test_id("status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("cancel-task")).to_be_disabled()
    assert server.call(lambda: host.storage.get(scheduled)).status is S.CANCELLED  # type: ignore[union-attr]

    failed = server.seeded.failed[0]
    page.goto(f"{server.url}{BASE}/tasks/{failed}")
    page.get_by_test_id("retry-task").click()
    page.wait_for_url(re.compile(r"/tasks/(?!" + str(failed) + r")[0-9a-f-]{36}$"))
    new_id = uuid.UUID(page.url.rsplit("/", 1)[-1])
    expect(page.locator("h1").get_by_test_id("status")).to_have_text("Failed")
    expect(page.get_by_text("Retry of")).to_be_visible()
    row = server.call(lambda: host.storage.get(new_id))  # type: ignore[union-attr]
    assert row.retried_from == failed and row.status is S.FAILED


def test_pause_a_queue_and_see_its_tasks_wait(page: Any, server: ThreadedServer) -> None:
    host = server.host
    page.click("a.nav-link:has-text('Queues')")
    page.get_by_test_id("pause-queue-reports").click()
    expect(page.get_by_test_id("queue-state-reports")).to_have_text("paused")
    report = server.call(lambda: host.dispatcher.dispatch(tasks.Report(name="held")))
    expect(page.get_by_test_id("queue-pending-reports")).to_have_text("1")
    assert server.call(lambda: host.storage.get(report)).status is S.QUEUED  # type: ignore[union-attr]
    page.get_by_test_id("resume-queue-reports").click()
    expect(page.get_by_test_id("queue-state-reports")).to_have_text("running")
    server.call(lambda: wait_status(host, report, S.COMPLETED))
    expect(page.get_by_test_id("queue-pending-reports")).to_have_text("0")
