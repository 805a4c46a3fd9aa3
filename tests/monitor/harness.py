"""Hosts with monitoring on every storage, an authenticated client, real uvicorn servers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from evertask import EverTaskHost, add_evertask
from evertask_abstractions import NoRetryPolicy, QueuedTaskStatus
from evertask_monitor_api import MonitoringOptions, monitoring_of

from . import tasks

T = TypeVar("T")

USERNAME = "ops"
PASSWORD = "correct-horse-battery-staple"
SECRET = "s" * 48
BASE = "/evertask-monitoring"
API = f"{BASE}/api"
BACKENDS = ["memory", "sqlite", "postgres"]
HANDLERS = (
    tasks.WorkHandler,
    tasks.BoomHandler,
    tasks.ReportHandler,
    tasks.TickHandler,
    tasks.HoldHandler,
    tasks.StageHandler,
    tasks.UndoHandler,
)


def postgres_url() -> str:
    return os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


_PG_REASON: list[str | None] = []


def _postgres_reason() -> str | None:
    """Why PostgreSQL tests cannot run here (``None``: they can)."""
    if _PG_REASON:
        return _PG_REASON[0]
    reason: str | None = None
    if importlib.util.find_spec("evertask_storage_postgres") is None:
        reason = "evertask_storage_postgres is not importable"
    else:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(postgres_url().replace("+asyncpg", ""), timeout=3)
            await conn.close()

        errors: list[BaseException] = []

        def run() -> None:  # in a thread: the caller may be inside an event loop
            try:
                asyncio.run(probe())
            except Exception as error:
                errors.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10)
        if errors or thread.is_alive():
            detail = errors[0] if errors else "timed out"
            reason = f"PostgreSQL at {postgres_url()} is not reachable: {detail}"
    _PG_REASON.append(reason)
    return reason


def require_backend(kind: str) -> None:
    """Skip (or, on CI, fail) when a backend is not available."""
    reason: str | None = None
    if kind == "sqlite" and importlib.util.find_spec("evertask_storage_sqlite") is None:
        reason = "evertask_storage_sqlite is not importable"
    elif kind == "postgres":
        reason = _postgres_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true" and kind == "postgres":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_url().replace("+asyncpg", ""), timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Built:
    host: EverTaskHost
    kind: str
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def storage(self) -> Any:
        return self.host.storage

    async def close(self) -> None:
        await self.host.stop()
        for step in self.cleanup:
            await step()


def build_host(
    kind: str,
    directory: Path,
    configure: Callable[[MonitoringOptions], object] | None = None,
    *,
    credentials: bool = True,
    storage: Any = None,
    options: Callable[[Any], object] | None = None,
) -> Built:
    """A host with the test handlers, a "reports" queue and monitoring (not started).

    ``storage``: a memory storage instance to share with other hosts (``kind="memory"``);
    ``options`` further configures the host's options (e.g. a short lease).
    """

    def setup(opt: Any) -> None:
        opt.register_handler(*HANDLERS)
        opt.set_default_retry_policy(NoRetryPolicy())
        opt.with_persistent_logger()
        if options is not None:
            options(opt)

    def monitor(options: MonitoringOptions) -> None:
        if credentials:
            options.set_credentials(USERNAME, PASSWORD)
        options.set_jwt_secret(SECRET)
        if configure is not None:
            configure(options)

    builder = add_evertask(None, setup).add_queue(
        "reports", lambda q: q.set_max_degree_of_parallelism(2)
    )
    cleanup: list[Callable[[], Awaitable[None]]] = []
    if kind == "memory" and storage is not None:
        builder.use_storage(storage)
    elif kind == "memory":
        builder.add_memory_storage()
    elif kind == "sqlite":
        builder.add_sqlite_storage(str(directory / f"monitor-{uuid.uuid4().hex[:8]}.db"))
    elif kind == "postgres":
        schema = f"mon_{uuid.uuid4().hex[:12]}"
        builder.add_postgres_storage(postgres_url(), schema=schema)
        cleanup.append(lambda: drop_schema(schema))
    else:
        raise ValueError(kind)
    builder.add_monitoring_api(monitor)
    return Built(builder.build(), kind, cleanup)


LEASE = timedelta(milliseconds=600)


def fast_lease(options: Any) -> None:
    """Cluster timings for tests: a node that stops heartbeating is dead within a second."""
    options.set_lease_duration(LEASE)
    options.set_heartbeat_interval(timedelta(milliseconds=100))
    options.set_cluster_poll_interval(timedelta(milliseconds=50))


async def stop_heartbeats(host: EverTaskHost) -> None:
    """Cancel a host's membership tasks, as if its process hung: its lease runs out."""
    membership = host.engine.membership
    assert membership is not None
    for task in membership._tasks:
        task.cancel()
    await asyncio.gather(*membership._tasks, return_exceptions=True)


def parent_app(host: EverTaskHost) -> FastAPI:
    app = FastAPI()
    monitoring_of(host).mount(app)
    return app


class Api:
    """An httpx client on the mounted monitoring app (in-process ASGI)."""

    def __init__(self, app: Any, client_ip: str = "127.0.0.1") -> None:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.token: str | None = None

    async def login(self, username: str = USERNAME, password: str = PASSWORD) -> str:
        response = await self.client.post(
            f"{API}/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        self.token = str(response.json()["token"])
        return self.token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{API}{path}", params=params, headers=self.headers)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(f"{API}{path}", headers=self.headers, **kwargs)

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def aclose(self) -> None:
        await self.client.aclose()


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """Poll a (sync or async) predicate until truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_status(
    host: EverTaskHost, task_id: uuid.UUID, *statuses: QueuedTaskStatus, timeout: float = 5.0
) -> None:
    storage = host.storage
    assert storage is not None

    async def reached() -> bool:
        row = await storage.get(task_id)
        return row is not None and row.status in statuses

    try:
        await wait_for(reached, timeout)
    except AssertionError:
        row = await storage.get(task_id)
        raise AssertionError(
            f"{task_id} did not reach {statuses}: {row.status if row else None}"
        ) from None


@dataclass
class Seeded:
    completed: list[uuid.UUID]
    failed: list[uuid.UUID]
    reports: list[uuid.UUID]
    scheduled: list[uuid.UUID]
    cancelled: uuid.UUID
    recurring: uuid.UUID

    @property
    def total(self) -> int:
        return len(self.completed) + len(self.failed) + len(self.reports) + len(self.scheduled) + 2


async def seed(host: EverTaskHost) -> Seeded:
    """15 tasks: 6 completed, 3 failed, 2 completed on "reports", 2 scheduled, 1 cancelled,
    1 recurring that ran once and waits for its next hour."""
    d = host.dispatcher
    S = QueuedTaskStatus
    completed = [await d.dispatch(tasks.Work(n=i)) for i in range(6)]
    failed = [await d.dispatch(tasks.Boom(message=f"boom {i}")) for i in range(3)]
    reports = [await d.dispatch(tasks.Report(name=f"q{i}")) for i in range(2)]
    scheduled = [await d.dispatch(tasks.Work(n=100 + i), timedelta(hours=1)) for i in range(2)]
    cancelled = await d.dispatch(tasks.Work(n=999), timedelta(hours=2))
    await d.cancel(cancelled)
    recurring = await d.dispatch(
        tasks.Tick(), lambda b: b.run_now().then().every_hour(), task_key="tick-key"
    )
    for tid in [*completed, *reports]:
        await wait_status(host, tid, S.COMPLETED)
    for tid in failed:
        await wait_status(host, tid, S.FAILED)
    await wait_status(host, cancelled, S.CANCELLED)
    storage = host.storage
    assert storage is not None

    async def ticked() -> bool:
        return await storage.get_current_run_count(recurring) >= 1 and (
            (await storage.get(recurring)) or False
        ).status in (S.COMPLETED, S.WAITING_QUEUE, S.QUEUED)  # type: ignore[union-attr]

    await wait_for(ticked)
    return Seeded(completed, failed, reports, scheduled, cancelled, recurring)


# -- real servers -------------------------------------------------------------------------
def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any, *, lifespan: bool = False) -> AsyncIterator[str]:
    """Run ``app`` on uvicorn in this loop on a free port; yields ``http://127.0.0.1:PORT``."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on" if lifespan else "off")
    )
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started or task.done(), 10)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


class ThreadedServer:
    """A host and uvicorn running in their own thread and loop (for sync Playwright and
    schemathesis); ``call(coro_fn)`` runs a coroutine there."""

    def __init__(self, make: Callable[[], Built], seed_with: Callable[[EverTaskHost], Any] | None):
        self._make = make
        self._seed_with = seed_with
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self.built: Built | None = None
        self.seeded: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="monitor-server", daemon=True)

    @property
    def host(self) -> EverTaskHost:
        assert self.built is not None
        return self.built.host

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        try:
            self._stop = asyncio.Event()
            self.built = self._make()
            await self.built.host.start()
            if self._seed_with is not None:
                self.seeded = await self._seed_with(self.built.host)
            async with serve(parent_app(self.built.host)) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            if self.built is not None:
                await self.built.close()

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.loop.close()
