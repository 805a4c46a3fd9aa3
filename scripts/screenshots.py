"""Screenshot every dashboard page into docs/images/ (``python scripts/screenshots.py``).

Runs the FastAPI sample (``samples/fastapi_app``) on a temporary SQLite database with a
mixed workload, logs in with headless Chromium (Debian's ``/usr/bin/chromium``, never a
downloaded browser) and writes one PNG per page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("EVERTASK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
PAGES = [
    "login",
    "overview",
    "tasks",
    "task-detail",
    "workflows",
    "workflow-detail",
    "queues",
    "rate-limits",
    "live",
    "statistics",
]


async def _workload(host: Any) -> None:
    from evertask_abstractions import QueuedTaskStatus
    from samples.fastapi_app import tasks

    d = host.dispatcher
    ids = []
    for i in range(24):
        ids.append(
            await d.dispatch(
                tasks.SendWelcomeEmail(user_email=f"user{i}@example.com", user_name=f"User {i}")
            )
        )
    for i in range(4):
        ids.append(await d.dispatch(tasks.GenerateReport(report=f"weekly-{i}", rows=500)))
    for i in range(12):
        ids.append(await d.dispatch(tasks.ResizeImage(name=f"photo-{i}.png", size=20_000)))
    for _ in range(10):
        ids.append(await d.dispatch(tasks.FlakyCall(fail_rate=0.45)))
    ids.append(await d.dispatch(tasks.FlakyCall(fail_rate=1.0)))
    for i in range(3):
        await d.dispatch(tasks.GenerateReport(report=f"month-end-{i}"), timedelta(hours=6 + i))
    doomed = await d.dispatch(tasks.GenerateReport(report="cancelled"), timedelta(hours=1))
    await d.cancel(doomed)
    storage = host.storage
    deadline = time.monotonic() + 30
    finished = {QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED}
    while time.monotonic() < deadline:
        rows = [await storage.get(i) for i in ids]
        if all(r is not None and r.status in finished for r in rows):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the workload did not finish within 30 s")


async def _history(host: Any) -> None:
    """Backdated finished rows over the last week, so the charts have a shape."""
    import random
    import uuid

    from evertask.storage.models import QueuedTask, TaskQuery
    from evertask_abstractions import QueuedTaskStatus

    storage = host.storage
    page = await storage.query_tasks(TaskQuery(page_size=200))
    kinds = {(r.type, r.handler, r.queue_name, r.request) for r in page.items if not r.is_recurring}
    rnd = random.Random(3)
    now = host.engine.clock.now()
    for hours_ago in range(1, 24 * 7):
        for _ in range(rnd.randrange(0, 4 if hours_ago > 24 else 6)):
            type_, handler, queue, request = rnd.choice(sorted(kinds))
            failed = rnd.random() < 0.07
            created = now - timedelta(hours=hours_ago, minutes=rnd.randrange(60))
            status = QueuedTaskStatus.FAILED if failed else QueuedTaskStatus.COMPLETED
            await storage.persist(
                QueuedTask(
                    id=uuid.uuid4(),
                    type=type_,
                    request=request,
                    handler=handler,
                    status=status,
                    created_at_utc=created,
                    queue_name=queue,
                    last_execution_utc=created + timedelta(seconds=1),
                    execution_time_ms=rnd.uniform(5, 400 if "Report" in type_ else 60),
                    exception="ConnectionError: the remote service did not answer"
                    if failed
                    else None,
                )
            )


async def _orders(host: Any) -> str:
    """Order sagas (the sample's POST /order): three shipped, one declined and compensated,
    plus a batch of thumbnails; returns the declined order's workflow id."""
    from samples.fastapi_app import tasks
    from samples.fastapi_app.app import order_workflow

    d = host.dispatcher
    ids = [await d.dispatch_workflow(order_workflow(1040 + i)) for i in range(3)]
    declined = await d.dispatch_workflow(order_workflow(1043, decline=True))
    thumbs = await d.dispatch_batch(
        [tasks.ResizeImage(name=f"thumb-{i}.png", size=5_000) for i in range(8)], name="thumbnails"
    )
    storage = host.storage
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = [await d.get_batch(i) for i in (*ids, declined, thumbs)]
        compensations = await storage.list_batches(kinds=["Compensation"], workflow_id=declined)
        if all(r.finished for r in records) and any(
            c.status.value != "Running" for c in compensations
        ):
            return str(declined)
        await asyncio.sleep(0.1)
    raise RuntimeError("the orders did not finish within 30 s")


async def _first_failed(host: Any) -> str:
    from evertask.storage.models import TaskQuery
    from evertask_abstractions import QueuedTaskStatus

    page = await host.storage.query_tasks(
        TaskQuery(statuses=frozenset({QueuedTaskStatus.FAILED}), page_size=1)
    )
    return str(page.items[0].id) if page.items else ""


async def _throttled(host: Any) -> None:
    """Invoice syncs over their per-tenant budget (2 a minute): the rest stay parked."""
    from samples.fastapi_app import tasks

    for tenant, count in (("acme", 7), ("globex", 4), ("initech", 2)):
        for _ in range(count):
            await host.dispatcher.dispatch(tasks.SyncInvoices(tenant_id=tenant))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if host.rate_limiter.parked_task_count >= 7:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the invoice syncs were not parked within 10 s")


async def run(out_dir: Path, only: frozenset[str] = frozenset(PAGES)) -> list[Path]:
    import uvicorn
    from playwright.async_api import async_playwright

    from evertask_monitor_api import monitoring_of
    from samples.fastapi_app import tasks
    from samples.fastapi_app.app import create_app

    tmp = tempfile.mkdtemp(prefix="evertask-shots-")
    os.environ["EVERTASK_DEMO_DB"] = str(Path(tmp) / "demo.db")
    app = create_app()
    host = app.state.host
    monitoring = monitoring_of(host)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    written: list[Path] = []
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.05)
        await _workload(host)
        await _history(host)
        await _throttled(host)
        declined = await _orders(host)
        failed = await _first_failed(host)
        base = f"http://127.0.0.1:{port}{monitoring.url_path}"
        creds = monitoring.credentials
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})

            async def shot(name: str) -> None:
                if name not in only:
                    return
                await page.wait_for_timeout(300)  # let charts settle after the data arrived
                path = out_dir / f"{name}.png"
                await page.screenshot(path=str(path), full_page=False)
                written.append(path)

            await page.goto(f"{base}/")
            await page.fill("input[name=username]", creds.username)
            await shot("login")
            await page.fill("input[name=password]", creds.password)
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid=kpi-total]")
            await page.wait_for_selector("[data-testid=connection]:has-text('Live')")
            await page.wait_for_selector("a.queue-mini")
            await shot("overview")
            await page.click("a.nav-link:has-text('Tasks')")
            await page.wait_for_selector("[data-testid=task-row]")
            await shot("tasks")
            if failed:
                await page.goto(f"{base}/tasks/{failed}")
                await page.wait_for_selector("[data-testid=task-exception]")
                await shot("task-detail")
            await page.click("a.nav-link:has-text('Workflows')")
            await page.wait_for_selector("[data-testid=batch-row]")
            await shot("workflows")
            await page.goto(f"{base}/workflows/{declined}")
            await page.wait_for_selector("[data-testid=compensation-status]")
            await page.locator("[data-testid=member-result] summary").first.click()
            await shot("workflow-detail")
            await page.click("a.nav-link:has-text('Queues')")
            await page.wait_for_selector("[data-testid=queue-reports]")
            await page.wait_for_selector("svg[aria-label='Tasks per queue']")
            await shot("queues")
            await page.click("a.nav-link:has-text('Rate limits')")
            await page.wait_for_selector("[data-testid=parked-task]")
            await shot("rate-limits")
            await page.click("a.nav-link:has-text('Live')")
            await page.wait_for_selector("[data-testid=live-status]:has-text('Connected')")
            d = host.dispatcher
            for i in range(6):
                await d.dispatch(
                    tasks.SendWelcomeEmail(user_email=f"live{i}@example.com", user_name="Live")
                )
            await d.dispatch(tasks.FlakyCall(fail_rate=1.0))
            await page.wait_for_selector("[data-testid=live-event] >> nth=12")
            await shot("live")
            await page.click("a.nav-link:has-text('Statistics')")
            await page.wait_for_selector("[data-testid=task-types]")
            await page.wait_for_selector("svg[aria-label='Success rate']")
            await page.wait_for_selector("svg[aria-label='Average execution time']")
            await shot("statistics")
            await browser.close()
    finally:
        server.should_exit = True
        await serving
        sock.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("pages", nargs="*", metavar="PAGE", help=f"only these of {PAGES}")
    args = parser.parse_args()
    unknown = sorted(set(args.pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown page(s) {unknown}; pages: {PAGES}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(run(Path(args.out), frozenset(args.pages or PAGES))):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
