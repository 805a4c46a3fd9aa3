"""The demo application: ``python -m samples.fastapi_app`` (or ``make demo``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers
from fastapi import FastAPI, HTTPException

from evertask import EverTaskHost, EverTaskServiceBuilder, add_evertask
from evertask_abstractions import TaskDispatcher, Workflow
from evertask_monitor_api import monitoring_of

from . import tasks
from .services import EmailService, Stats
from .telemetry import configure_observability


class Container(containers.DeclarativeContainer):
    """The application's services."""

    email = providers.Singleton(EmailService)
    stats = providers.Singleton(Stats)


def configure_storage(builder: EverTaskServiceBuilder) -> str:
    """SQLite when its extra is installed (the embedded default), else memory."""
    path = os.environ.get("EVERTASK_DEMO_DB", "evertask-demo.db")
    try:
        builder.add_sqlite_storage(path)
        return f"sqlite:{path}"
    except Exception:
        builder.add_memory_storage()
        return "memory"


def create_builder(container: Container) -> EverTaskServiceBuilder:
    """The demo's tasks, options and queues (no storage: the caller adds it, so tests build
    the same configuration on a test host)."""
    return add_evertask(
        container,
        lambda opt: (
            opt.register_tasks_from_module(tasks)
            .set_max_degree_of_parallelism(8)
            .with_persistent_logger()
        ),
    ).add_queue(
        "reports",
        lambda q: (
            q.set_max_degree_of_parallelism(2)
            .set_channel_capacity(100)
            .set_default_timeout(timedelta(minutes=1))
        ),
    )


def order_workflow(order_id: int, *, decline: bool = False) -> Workflow:
    """An order as a saga: reserve the stock, charge the card, ship two parcels in
    parallel; a declined card fails the order and releases the stock (its compensation)."""
    return (
        Workflow(f"order-{order_id}")
        .then(
            tasks.ReserveStock(order_id=order_id, items=2),
            compensate=tasks.ReleaseStock(order_id=order_id),
        )
        .then(tasks.ChargeCard(order_id=order_id, amount_cents=4_200, decline=decline))
        .group(
            tasks.ShipParcel(order_id=order_id, warehouse="north"),
            tasks.ShipParcel(order_id=order_id, warehouse="south"),
        )
    )


async def register_startup_tasks(dispatcher: TaskDispatcher) -> None:
    """What the demo dispatches at every start: a recurring heartbeat (idempotent by its
    key), a welcome email and a report in 2 seconds."""
    await dispatcher.dispatch(
        tasks.Heartbeat(),
        lambda b: b.schedule().every(5).seconds(),
        task_key="demo-heartbeat",
    )
    await dispatcher.dispatch(tasks.SendWelcomeEmail(user_email="ada@example.com", user_name="Ada"))
    await dispatcher.dispatch(tasks.GenerateReport(report="startup"), timedelta(seconds=2))


def create_host(container: Container) -> tuple[EverTaskHost, str]:
    """Configure EverTask for the demo."""
    builder = create_builder(container)
    storage = configure_storage(builder)
    configure_observability(builder)
    builder.add_monitoring_api()  # dashboard at /evertask-monitoring
    return builder.build(), storage


def _public_url() -> str:
    """Where the demo listens (``--host``/``--port`` of ``python -m samples.fastapi_app``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return f"http://{known.host}:{known.port}"


def create_app() -> FastAPI:
    """The FastAPI application with EverTask running in its lifespan."""
    container = Container()
    host, storage = create_host(container)

    monitoring = monitoring_of(host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with host:
            creds = monitoring.credentials
            print(
                f"Monitoring dashboard: {_public_url()}{monitoring.url_path}/  "
                f"(username: {creds.username}  password: {creds.password})",
                flush=True,
            )
            await register_startup_tasks(host.dispatcher)
            yield

    app = FastAPI(title="EverTask demo", lifespan=lifespan)
    monitoring.mount(app)
    app.state.host = host
    app.state.container = container

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {
            "app": "EverTask for Python demo",
            "storage": storage,
            "dashboard": monitoring.url_path + "/",
            "try": [
                "POST /welcome?email=a@b.c&name=Ann",
                "POST /report?name=q3&delay=5",
                "POST /resize?name=cat.png",
                "POST /flaky",
                "POST /invoices?tenant=acme&count=5",
                "POST /order?order_id=42&decline=false",
                "GET /tasks/{id}",
                "GET /stats",
            ],
        }

    @app.post("/welcome")
    async def welcome(email: str, name: str = "friend") -> dict[str, str]:
        tid = await host.dispatcher.dispatch(
            tasks.SendWelcomeEmail(user_email=email, user_name=name)
        )
        return {"task_id": str(tid)}

    @app.post("/report")
    async def report(name: str, delay: float = 0.0) -> dict[str, str]:
        when = timedelta(seconds=delay) if delay > 0 else None
        tid = await host.dispatcher.dispatch(tasks.GenerateReport(report=name), when)
        return {"task_id": str(tid)}

    @app.post("/resize")
    async def resize(name: str) -> dict[str, str]:
        tid = await host.dispatcher.dispatch(tasks.ResizeImage(name=name))
        return {"task_id": str(tid)}

    @app.post("/flaky")
    async def flaky(fail_rate: float = 0.5) -> dict[str, str]:
        tid = await host.dispatcher.dispatch(tasks.FlakyCall(fail_rate=fail_rate))
        return {"task_id": str(tid)}

    @app.post("/invoices")
    async def invoices(tenant: str = "acme", count: int = 1) -> dict[str, list[str]]:
        """Invoice syncs, rate-limited to 2 a minute per tenant: see the Rate limits page."""
        ids = [
            await host.dispatcher.dispatch(tasks.SyncInvoices(tenant_id=tenant))
            for _ in range(max(1, min(count, 100)))
        ]
        return {"task_ids": [str(t) for t in ids]}

    @app.post("/order")
    async def order(order_id: int = 1, decline: bool = False) -> dict[str, str]:
        """An order saga (decline=true fails it and releases the stock): see the Workflows
        page."""
        wid = await host.dispatcher.dispatch_workflow(order_workflow(order_id, decline=decline))
        return {"workflow_id": str(wid)}

    @app.post("/tasks/{task_id}/cancel")
    async def cancel(task_id: uuid.UUID) -> dict[str, str]:
        await host.dispatcher.cancel(task_id)
        return {"cancelled": str(task_id)}

    @app.get("/tasks/{task_id}")
    async def task(task_id: uuid.UUID) -> dict[str, Any]:
        assert host.storage is not None
        row = await host.storage.get(task_id)
        if row is None:
            raise HTTPException(404, "no such task")
        return {
            "id": str(row.id),
            "type": row.type,
            "status": row.status.value,
            "queue": row.queue_name,
            "exception": row.exception,
            "recurring": row.recurring_info,
        }

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        return dict(container.stats().counts)

    return app
