"""The dashboard in headless Chromium (Debian's /usr/bin/chromium) against a real server."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from evertask import EverTaskHost, MemoryTaskStorage
from evertask.adaptive import ResourceSample
from evertask_abstractions import AuditLevel, QueuedTaskStatus, Workflow
from evertask_monitor_api import MonitoringOptions, create_standalone_app

from . import tasks
from .harness import (
    BASE,
    PASSWORD,
    USERNAME,
    Built,
    ThreadedServer,
    build_host,
    fast_lease,
    seed,
    serve,
    stop_heartbeats,
    wait_for,
    wait_status,
)

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


def _logged_in(browser: Any, url: str, **context_options: Any) -> tuple[Any, Any]:
    context = browser.new_context(**context_options)
    context.set_default_timeout(5000)
    tab = context.new_page()
    tab.goto(f"{url}{BASE}/")
    tab.fill("input[name=username]", USERNAME)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_selector("[data-testid=kpi-total]")
    return context, tab


_CLIPPED_TEXTS = """() => [...document.querySelectorAll("svg.chart")].flatMap((svg) => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll("text")].filter((t) => {
    const r = t.getBoundingClientRect();
    return r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
      r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5);
  }).map((t) => `${svg.getAttribute("aria-label")}: ${t.textContent}`);
})"""


def test_statistics_chart_labels_are_not_clipped_at_1400px(
    browser: Any, server: ThreadedServer
) -> None:
    host = server.host
    storage: Any = host.storage
    slow = server.call(lambda: host.dispatcher.dispatch(tasks.Work(n=56), timedelta(hours=6)))
    server.call(lambda: storage.set_in_progress(slow, AuditLevel.FULL))
    server.call(lambda: storage.set_completed(slow, 98_765.4, AuditLevel.FULL))  # long labels
    context, tab = _logged_in(browser, server.url, viewport={"width": 1400, "height": 900})
    try:
        tab.click("a.nav-link:has-text('Statistics')")
        chart = tab.locator("svg[aria-label='Average execution time']")
        expect(chart.locator("circle").first).to_be_attached()
        expect(tab.locator("svg[aria-label='Success rate'] text").first).to_be_visible()
        assert tab.evaluate(_CLIPPED_TEXTS) == []
    finally:
        context.close()


def test_times_next_to_a_zoned_schedule_name_their_zone(
    browser: Any, server: ThreadedServer
) -> None:
    host = server.host
    rome = server.call(
        lambda: host.dispatcher.dispatch(
            tasks.Tick(),
            lambda b: b.schedule().every_day().at_time(time(9, 0)).in_timezone("Europe/Rome"),
        )
    )
    context, tab = _logged_in(browser, server.url, locale="en-GB", timezone_id="UTC")
    try:
        tab.goto(f"{server.url}{BASE}/tasks/{rome}")
        expect(tab.get_by_test_id("field-schedule")).to_contain_text("Europe/Rome")
        for field in ("next-run", "created", "scheduled"):
            expect(tab.get_by_test_id(f"field-{field}")).to_have_text(re.compile(r"\d UTC$"))
        # a recurring series' "Scheduled" is its next run
        next_run = tab.get_by_test_id("field-next-run").inner_text()
        expect(tab.get_by_test_id("field-scheduled")).to_have_text(next_run)
        tab.goto(f"{server.url}{BASE}/tasks?isRecurring=true")
        row = tab.get_by_test_id("task-row").filter(has_text="Tick").first
        expect(row.get_by_test_id("scheduled")).to_have_text(re.compile(r"\d UTC$"))
        tab.goto(f"{server.url}{BASE}/tasks/{server.seeded.completed[0]}")
        expect(tab.get_by_test_id("field-created")).not_to_contain_text("UTC")  # not zoned
    finally:
        context.close()
        server.call(lambda: host.dispatcher.cancel(rome))


def test_a_task_stopped_by_the_service_shows_no_false_zero_duration(
    page: Any, server: ThreadedServer
) -> None:
    host = server.host
    storage: Any = host.storage
    tid = server.call(lambda: host.dispatcher.dispatch(tasks.Work(n=55), timedelta(hours=5)))
    server.call(lambda: storage.set_in_progress(tid, AuditLevel.FULL))
    # as the engine writes it: ServiceStopped with how long the task ran (30 s)
    server.call(
        lambda: storage.set_status(
            tid, QueuedTaskStatus.SERVICE_STOPPED, "stopped", AuditLevel.FULL, 30_000.0
        )
    )
    page.goto(f"{server.url}{BASE}/tasks/{tid}")
    expect(page.locator("h1").get_by_test_id("status")).to_have_text("ServiceStopped")
    expect(page.get_by_test_id("field-duration")).not_to_have_text(re.compile(r"^0(\.00)? ms$"))
    expect(page.get_by_test_id("field-duration")).to_contain_text("30")
    page.goto(f"{server.url}{BASE}/tasks?statuses=ServiceStopped")
    row = page.get_by_test_id("task-row").first
    expect(row.get_by_test_id("duration")).not_to_have_text(re.compile(r"^0(\.00)? ms$"))


def test_recent_activity_is_sorted_by_the_time_it_shows(page: Any) -> None:
    lines = page.get_by_test_id("activity")
    expect(lines.first).to_be_visible()
    stamps = [
        datetime.fromisoformat(lines.nth(i).get_attribute("data-timestamp").replace("Z", "+00:00"))
        for i in range(lines.count())
    ]
    assert len(stamps) > 1 and stamps == sorted(stamps, reverse=True)


def test_a_queue_with_nothing_finished_shows_a_dash_for_its_success_rate(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("empty")
    empty = ThreadedServer(lambda: build_host("memory", directory), None).start()
    try:
        context, tab = _logged_in(browser, empty.url)
        try:
            tab.click("a.nav-link:has-text('Queues')")
            expect(tab.get_by_test_id("queue-success-default")).to_have_text("—")
            expect(tab.get_by_test_id("kpi-success")).to_have_count(0)  # another page
            tab.click("a.nav-link:has-text('Overview')")
            expect(tab.get_by_test_id("kpi-success")).to_have_text("—")
        finally:
            context.close()
    finally:
        empty.stop()


def test_the_nodes_page_lists_the_cluster_and_shows_a_dead_node(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("nodes")
    storage = MemoryTaskStorage()
    others: list[Built] = []

    def make() -> Built:
        return build_host("memory", directory, storage=storage, options=fast_lease)

    async def second_host(_host: EverTaskHost) -> None:
        others.append(make())
        await others[0].host.start()

    live = ThreadedServer(make, second_host).start()
    try:
        here, there = live.host, others[0].host
        context, tab = _logged_in(browser, live.url, locale="en-GB", timezone_id="UTC")
        try:
            tab.click("a.nav-link:has-text('Nodes')")
            expect(tab.get_by_test_id("node-row")).to_have_count(2)
            current = tab.locator(f"[data-testid=node-row][data-node-id='{here.node_id}']")
            other = tab.locator(f"[data-testid=node-row][data-node-id='{there.node_id}']")
            expect(current.get_by_test_id("node-current")).to_have_text("this host")
            expect(other.get_by_test_id("node-current")).to_have_count(0)
            for row in (current, other):
                expect(row.get_by_test_id("node-state")).to_have_text("alive")
                expect(row.get_by_test_id("node-role")).to_have_text("worker")
                expect(row.get_by_test_id("node-heartbeat")).to_contain_text(" ago")
                expect(row.get_by_test_id("node-heartbeat")).to_contain_text("UTC")
            expect(current.get_by_test_id("node-running")).to_have_text("0")
            expect(other.get_by_test_id("node-running")).to_have_text("—")
            live.call(lambda: stop_heartbeats(there))
            # no task event says so: the page's own periodic refresh shows it
            expect(other.get_by_test_id("node-state")).to_have_text("dead", timeout=10_000)
            expect(current.get_by_test_id("node-state")).to_have_text("alive")
            expect(tab.get_by_test_id("node-summary")).to_have_text("2 nodes · 1 alive")

            tid = live.call(lambda: here.dispatcher.dispatch(tasks.Work(n=5), timedelta(hours=1)))
            tab.goto(f"{live.url}{BASE}/tasks/{tid}")
            owner = tab.get_by_test_id("field-owner-node")
            expect(owner).to_have_text(str(here.node_id).split("-")[0])
        finally:
            context.close()
    finally:
        for built in others:
            live.call(built.close)
        live.stop()


# -- rate limits ---------------------------------------------------------------------------
def _throttled(options: Any) -> None:
    options.register_handler(*tasks.THROTTLED)


async def _park(host: EverTaskHost) -> dict[str, list[uuid.UUID]]:
    """acme: 1 runs, 3 parked (slots 10, 20 and 30 minutes on); globex: 1 runs, 1 parked;
    Single: 1 running, 1 waiting for the permit."""
    d = host.dispatcher
    ids = {
        "acme": [await d.dispatch(tasks.Limited(tenant="acme", n=i)) for i in range(4)],
        "globex": [await d.dispatch(tasks.Limited(tenant="globex", n=i)) for i in range(2)],
        "single": [await d.dispatch(tasks.Single(name=f"rl-single-{i}")) for i in range(2)],
    }
    gate = host.rate_limiter
    await wait_for(lambda: gate.parked_task_count == 4)
    await wait_for(lambda: gate.waiting_count(tasks.SingleHandler) == 1)
    return ids


def test_the_rate_limits_page_shows_parked_tasks_and_throttled_handlers(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("ratelimits")
    live = ThreadedServer(lambda: build_host("memory", directory, options=_throttled), _park)
    live.start()
    try:
        host = live.host
        ids: dict[str, list[uuid.UUID]] = live.seeded
        context, tab = _logged_in(browser, live.url, locale="en-GB", timezone_id="UTC")
        try:
            tab.click("a.nav-link:has-text('Rate limits')")
            expect(tab.get_by_test_id("kpi-parked")).to_have_text("4")
            # a host on the memory storage: budgets and permits are its own
            assert not host.rate_limiter.cluster_wide
            expect(tab.get_by_test_id("ratelimits-summary")).to_have_text(
                "per-host budgets · this host: 4 parked · 2 throttled handlers"
            )
            expect(tab.get_by_test_id("ratelimits-scope")).to_contain_text("permits are per host")
            expect(tab.get_by_test_id("adaptive-state")).to_have_text("not configured")
            expect(tab.get_by_test_id("adaptive-disabled")).to_contain_text(
                "configure_adaptive_throttling(...)"
            )
            expect(tab.get_by_test_id("kpi-tracked-keys")).to_have_text("2")
            expect(tab.get_by_test_id("kpi-fail-open")).to_have_text("0")
            max_parked = f"{host.rate_limiter.max_parked_tasks:,}"
            expect(tab.get_by_test_id("kpi-max-parked")).to_have_text(max_parked)
            expect(tab.get_by_test_id("ratelimits-empty")).to_have_count(0)

            limited = tab.locator("[data-testid=throttled-handler][data-handler=LimitedHandler]")
            expect(limited.get_by_test_id("handler-rate-limit")).to_have_text(
                "1 per 10 min per key"
            )
            expect(limited.get_by_test_id("handler-parked")).to_have_text("4")
            single = tab.locator("[data-testid=throttled-handler][data-handler=SingleHandler]")
            expect(single.get_by_test_id("handler-max-concurrency")).to_have_text("1")
            expect(single.get_by_test_id("handler-running")).to_have_text("1")
            expect(single.get_by_test_id("handler-waiting")).to_have_text("1")

            expect(tab.get_by_test_id("parked-key")).to_have_count(2)
            acme = tab.locator("[data-testid=parked-key][data-key=acme]")
            expect(acme.get_by_test_id("key-parked")).to_have_text("3")
            expect(acme.get_by_test_id("key-next-slot")).to_contain_text(
                re.compile(r"in (9|10) min")
            )
            globex = tab.locator("[data-testid=parked-key][data-key=globex]")
            expect(globex.get_by_test_id("key-parked")).to_have_text("1")

            rows = tab.get_by_test_id("parked-task")
            expect(rows).to_have_count(4)
            parked = [*ids["acme"][1:], ids["globex"][1]]
            shown = {rows.nth(i).get_attribute("data-task-id") for i in range(4)}
            assert shown == {str(t) for t in parked}
            last = tab.locator(f"[data-testid=parked-task][data-task-id='{ids['acme'][3]}']")
            expect(last.get_by_test_id("parked-until")).to_contain_text(
                re.compile(r"in (29|30) min")
            )
            expect(last.get_by_test_id("parked-until")).to_contain_text("UTC")
            expect(last.get_by_test_id("parked-since")).to_contain_text(" ago")
            expect(last.get_by_test_id("parked-key-name")).to_have_text("acme")

            # it follows the host by itself: a new parked task, a cancelled one, a permit passed on
            initech = live.call(lambda: host.dispatcher.dispatch(tasks.Limited(tenant="initech")))
            more = live.call(lambda: host.dispatcher.dispatch(tasks.Limited(tenant="initech")))
            expect(tab.locator(f"[data-testid=parked-task][data-task-id='{more}']")).to_be_visible(
                timeout=10_000
            )
            live.call(lambda: wait_status(host, initech, S.COMPLETED))
            live.call(lambda: host.dispatcher.cancel(ids["globex"][1]))
            expect(tab.locator("[data-testid=parked-key][data-key=globex]")).to_have_count(
                0, timeout=10_000
            )
            expect(tab.get_by_test_id("kpi-parked")).to_have_text("4")

            async def release() -> None:
                tasks.gate("rl-single-0").set()

            live.call(release)
            expect(single.get_by_test_id("handler-waiting")).to_have_text("0", timeout=10_000)
            expect(single.get_by_test_id("handler-running")).to_have_text("1")

            # the task page of a parked task says until when, and links back here
            last.get_by_test_id("parked-link").click()
            tab.wait_for_url(re.compile(rf"/tasks/{ids['acme'][3]}$"))
            expect(tab.locator("h1").get_by_test_id("status")).to_have_text("Queued")
            until = tab.get_by_test_id("field-throttled-until")
            expect(until).to_contain_text("rate-limited")
            slot = host.rate_limiter.throttled_until(ids["acme"][3])
            assert slot is not None
            expect(until).to_contain_text(f"{slot:%H:%M}")
            until.locator("a").click()
            expect(tab.get_by_test_id("kpi-parked")).to_be_visible()
            # a finished task has no throttled-until
            tab.goto(f"{live.url}{BASE}/tasks/{ids['acme'][0]}")
            expect(tab.locator("h1").get_by_test_id("status")).to_have_text("Completed")
            expect(tab.get_by_test_id("field-throttled-until")).to_have_count(0)
        finally:
            context.close()

            async def release_all() -> None:
                for name in ("rl-single-0", "rl-single-1"):
                    tasks.gate(name).set()

            live.call(release_all)
    finally:
        live.stop()


def test_the_rate_limits_page_explains_how_to_declare_one(page: Any) -> None:
    page.click("a.nav-link:has-text('Rate limits')")
    empty = page.get_by_test_id("ratelimits-empty")
    expect(empty).to_contain_text("rate_limit = RateLimitPolicy(")
    # the module's host is on SQLite: budgets and permits are cluster-wide by default
    expect(empty).to_contain_text("at most 2 at once across the cluster")
    expect(page.get_by_test_id("ratelimits-summary")).to_contain_text("cluster-wide budgets")
    expect(page.get_by_test_id("throttling-docs")).to_contain_text("docs/throttling.md")
    expect(page.get_by_test_id("kpi-parked")).to_have_text("0")
    expect(page.get_by_test_id("parked-table")).to_have_count(0)


class _Overloaded:
    """A resource probe reporting what the test sets (adaptive throttling's fake)."""

    def __init__(self, cpu: float, memory_bytes: int) -> None:
        self.now = ResourceSample(cpu, memory_bytes)

    def sample(self) -> ResourceSample:
        return self.now


def test_the_rate_limits_page_shows_cluster_wide_budgets_and_adaptive_throttling_paused(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("adaptive")
    probe = _Overloaded(cpu=1.25, memory_bytes=300 * 1024**2)

    def options(opt: Any) -> None:
        _throttled(opt)
        opt.configure_adaptive_throttling(
            lambda a: (
                a.set_cpu_threshold(0.85)
                .set_memory_threshold_bytes(2 * 1024**3)
                .set_check_interval(timedelta(milliseconds=50))
                .use_probe(probe)
            )
        )

    live = ThreadedServer(lambda: build_host("sqlite", directory, options=options), None)
    live.start()
    try:
        host = live.host
        assert host.rate_limiter.cluster_wide
        throttle = host.adaptive_throttling
        assert throttle is not None
        live.call(lambda: wait_for(lambda: throttle.paused))
        context, tab = _logged_in(browser, live.url, locale="en-GB", timezone_id="UTC")
        try:
            tab.click("a.nav-link:has-text('Rate limits')")
            expect(tab.get_by_test_id("ratelimits-summary")).to_have_text(
                "cluster-wide budgets · this host: 0 parked · 2 throttled handlers"
                " · paused by adaptive throttling"
            )
            scope = tab.get_by_test_id("ratelimits-scope")
            expect(scope).to_contain_text("shared by every node through the database")
            expect(scope).to_contain_text("shown are this host's")
            expect(tab.get_by_test_id("kpi-tracked-keys")).to_have_text("0")

            expect(tab.get_by_test_id("adaptive-state")).to_have_text("paused")
            expect(tab.get_by_test_id("adaptive-reason")).to_have_text(
                "CPU at or above its threshold"
            )
            expect(tab.get_by_test_id("adaptive-since")).to_contain_text(" ago")
            expect(tab.get_by_test_id("adaptive-since")).to_contain_text("UTC")
            expect(tab.get_by_test_id("adaptive-cpu")).to_have_text(
                "1.25 cores · threshold 0.85 cores"
            )
            expect(tab.get_by_test_id("adaptive-memory")).to_have_text("300 MiB · threshold 2 GiB")
            expect(tab.get_by_test_id("adaptive-pauses")).to_have_text("1")

            # the page follows the host by itself: the load drops, the node resumes
            probe.now = ResourceSample(0.1, 300 * 1024**2)
            expect(tab.get_by_test_id("adaptive-state")).to_have_text("running", timeout=10_000)
            expect(tab.get_by_test_id("adaptive-reason")).to_have_count(0)
            expect(tab.get_by_test_id("adaptive-cpu")).to_have_text(
                "0.1 cores · threshold 0.85 cores"
            )
            expect(tab.get_by_test_id("ratelimits-summary")).not_to_contain_text("paused")
        finally:
            context.close()
    finally:
        live.stop()


class _AppServer:
    """An ASGI app served by uvicorn (with its lifespan) in a thread of its own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with serve(self.app, lifespan=True) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            self._ready.set()

    def __enter__(self) -> _AppServer:
        self._thread.start()
        self._ready.wait(30)
        assert self.url, "the app server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.loop.close()


def test_the_standalone_monitor_says_rate_limits_need_a_running_host(browser: Any) -> None:
    options = MonitoringOptions().set_credentials(USERNAME, PASSWORD)
    options.set_docs_url("https://docs.example.com/evertask")
    with _AppServer(create_standalone_app(MemoryTaskStorage(), options)) as standalone:
        context, tab = _logged_in(browser, standalone.url)
        try:
            expect(tab.get_by_test_id("connection")).to_contain_text("Polling")
            tab.click("a.nav-link:has-text('Rate limits')")
            expect(tab.get_by_test_id("ratelimits-unavailable")).to_contain_text(
                "without an EverTask host"
            )
            expect(tab.locator("h2")).to_have_text("Needs a running host")
            expect(tab.get_by_test_id("kpi-parked")).to_have_count(0)
            expect(tab.get_by_test_id("ratelimits-summary")).to_have_count(0)
        finally:
            context.close()


# -- workflows ------------------------------------------------------------------------------
WF_GATE = "wf-browser-first"


async def _workflows(host: EverTaskHost) -> dict[str, uuid.UUID]:
    """A failed saga (compensated), a workflow held at its first step, a finished batch."""
    d = host.dispatcher
    saga = await d.dispatch_workflow(
        Workflow("order-7")
        .then(tasks.Stage(name="reserve", value=1), compensate=tasks.Undo(name="reserve"))
        .group(tasks.Stage(name="ship-a", value=2), tasks.Stage(name="ship-b", value=3))
        .then(tasks.Stage(name="charge", fail=True))
        .then(tasks.Stage(name="notify"))
    )
    held = await d.dispatch_workflow(
        Workflow("held")
        .then(tasks.Stage(name="first", gate=WF_GATE))
        .then(tasks.Stage(name="second"))
    )
    batch = await d.dispatch_batch([tasks.Stage(name=f"b{i}", value=i) for i in range(3)])
    storage: Any = host.storage

    async def settled() -> bool:
        records = await d.get_batch(saga), await d.get_batch(batch)
        compensations = await storage.list_batches(kinds=["Compensation"], workflow_id=saga)
        return (
            all(r.finished for r in records)
            and bool(compensations)
            and all(c.status.value == "Completed" for c in compensations)
        )

    await wait_for(settled, 10)
    first = (await storage.batch_members(held))[0].id
    await wait_status(host, first, S.IN_PROGRESS)
    return {"saga": saga, "held": held, "batch": batch, "first": first}


def test_the_workflows_page_shows_a_saga_and_cancels_a_running_workflow(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("workflows")
    live = ThreadedServer(lambda: build_host("sqlite", directory), _workflows).start()
    try:
        host = live.host
        ids: dict[str, uuid.UUID] = live.seeded
        context, tab = _logged_in(browser, live.url)
        try:
            tab.click("a.nav-link:has-text('Workflows')")
            rows = tab.get_by_test_id("batch-row")
            expect(rows).to_have_count(3)
            shown = [rows.nth(i).get_attribute("data-batch-id") for i in range(3)]
            assert shown == [str(ids["batch"]), str(ids["held"]), str(ids["saga"])]  # newest first
            saga = tab.locator(f"[data-testid=batch-row][data-batch-id='{ids['saga']}']")
            expect(saga.get_by_test_id("batch-status")).to_have_text("Failed")
            expect(saga.get_by_test_id("progress-text")).to_have_text(
                "5 of 5 finished · 1 failed · 1 cancelled"
            )
            batch = tab.locator(f"[data-testid=batch-row][data-batch-id='{ids['batch']}']")
            expect(batch.get_by_test_id("batch-status")).to_have_text("Completed")
            expect(batch.get_by_test_id("batch-kind")).to_have_text("Batch")
            tab.get_by_role("group", name="Kind").get_by_role("button", name="Batches").click()
            expect(rows).to_have_count(1)
            tab.get_by_role("group", name="Kind").get_by_role("button", name="All").click()
            expect(rows).to_have_count(3)

            # the saga: its stages, results, the failed step, the compensations
            saga.get_by_test_id("batch-link").click()
            tab.wait_for_url(re.compile(rf"/workflows/{ids['saga']}$"))
            expect(tab.locator("h1")).to_contain_text("order-7")
            expect(tab.locator("h1").get_by_test_id("batch-status")).to_have_text("Failed")
            expect(tab.get_by_test_id("cancel-batch")).to_be_disabled()
            stages = tab.get_by_test_id("stage")
            expect(stages).to_have_count(4)
            expect(stages.nth(1).get_by_test_id("member-row")).to_have_count(2)
            expect(stages.nth(1).get_by_test_id("stage-status")).to_have_text("Completed")
            result = stages.nth(0).get_by_test_id("member-result")
            expect(result.locator("pre")).not_to_be_visible()  # collapsed
            result.locator("summary").click()
            expect(result.locator("pre")).to_contain_text('"value": 1')
            failed = stages.nth(2).get_by_test_id("member-row")
            expect(failed.get_by_test_id("status")).to_have_text("Failed")
            expect(failed.get_by_test_id("member-error")).to_have_text(
                "RuntimeError: charge failed"
            )
            expect(stages.nth(3).get_by_test_id("status")).to_have_text("Cancelled")
            expect(tab.get_by_test_id("compensation-status")).to_have_text("Completed")
            expect(tab.get_by_test_id("compensation-steps")).to_contain_text("undid reserve")
            continuation = tab.get_by_test_id("continuation-row")
            expect(continuation).to_have_count(1)
            expect(continuation.get_by_test_id("continue-when")).to_have_text("on failure")
            expect(tab.get_by_test_id("stages-note")).to_contain_text("runs it again in place")

            # a failed step's page, where it can be retried, links back to its workflow
            failed.get_by_test_id("retry-step").click()
            tab.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
            expect(tab.get_by_test_id("retry-task")).to_be_enabled()
            expect(tab.get_by_test_id("field-runs-after")).to_contain_text("group")
            tab.get_by_test_id("field-workflow").locator("a").click()
            tab.wait_for_url(re.compile(rf"/workflows/{ids['saga']}$"))

            # the held workflow: cancel it, after a confirmation
            tab.goto(f"{live.url}{BASE}/workflows/{ids['held']}")
            expect(tab.locator("h1").get_by_test_id("batch-status")).to_have_text("Running")
            expect(tab.get_by_test_id("batch-pending")).to_have_text("2")
            tab.get_by_test_id("cancel-batch").click()
            expect(tab.get_by_test_id("cancel-confirmation")).to_contain_text(
                "Cancel the 2 unfinished tasks of this workflow?"
            )
            tab.get_by_test_id("keep-running").click()
            expect(tab.get_by_test_id("cancel-confirmation")).to_have_count(0)
            assert live.call(lambda: host.dispatcher.get_batch(ids["held"])).status.value == (
                "Running"
            )
            tab.get_by_test_id("cancel-batch").click()
            tab.get_by_test_id("confirm-cancel").click()
            expect(tab.get_by_test_id("notice")).to_contain_text("was cancelled")
            expect(tab.locator("h1").get_by_test_id("batch-status")).to_have_text("Cancelled")
            expect(tab.get_by_test_id("cancel-batch")).to_be_disabled()
            expect(tab.get_by_test_id("batch-cancelled")).to_have_text("2")
            live.call(lambda: wait_status(host, ids["first"], S.CANCELLED))
            tab.click("a.nav-link:has-text('Workflows')")
            held = tab.locator(f"[data-testid=batch-row][data-batch-id='{ids['held']}']")
            expect(held.get_by_test_id("batch-status")).to_have_text("Cancelled")
        finally:
            context.close()
    finally:
        live.stop()


def test_a_read_only_monitor_hides_the_cancel_button_of_a_workflow(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("workflows-ro")

    async def held(host: EverTaskHost) -> uuid.UUID:
        return await host.dispatcher.dispatch_workflow(
            Workflow("held").then(tasks.Stage(name="first", gate="wf-browser-ro"))
        )

    live = ThreadedServer(
        lambda: build_host("memory", directory, lambda o: o.set_read_only()), held
    ).start()
    try:
        context, tab = _logged_in(browser, live.url)
        try:
            tab.goto(f"{live.url}{BASE}/workflows/{live.seeded}")
            expect(tab.locator("h1").get_by_test_id("batch-status")).to_have_text("Running")
            expect(tab.get_by_test_id("stage")).to_have_count(1)
            expect(tab.get_by_test_id("cancel-batch")).to_have_count(0)
        finally:
            context.close()

        async def release() -> None:
            tasks.gate("wf-browser-ro").set()

        live.call(release)
    finally:
        live.stop()
