"""The standalone read-only monitor over an existing database (module API and CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from evertask_abstractions import ConfigurationError, QueuedTaskStatus
from evertask_monitor_api import MonitoringOptions, create_standalone_app, storage_from_url

from . import tasks
from .harness import (
    API,
    BASE,
    PASSWORD,
    USERNAME,
    build_host,
    free_socket,
    postgres_url,
    require_backend,
    seed,
    serve,
    wait_status,
)

ROOT = Path(__file__).resolve().parents[2]


async def _seeded_database(kind: str, directory: Path) -> tuple[str, str | None]:
    built = build_host(kind, directory)
    await built.host.start()
    try:
        await seed(built.host)
    finally:
        await built.host.stop()  # keep the schema: cleanup runs after the test
    storage = built.host.storage
    if kind == "sqlite":
        return f"sqlite:///{storage.path}", None  # type: ignore[union-attr]
    _cleanups.extend(built.cleanup)
    return postgres_url(), storage.schema  # type: ignore[union-attr]


_cleanups: list[Callable[[], Awaitable[None]]] = []


@pytest.fixture
async def drop_schemas() -> AsyncIterator[None]:
    yield
    while _cleanups:
        await _cleanups.pop()()


@pytest.mark.usefixtures("drop_schemas")
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_standalone_serves_the_api_read_only(kind: str, tmp_path: Path) -> None:
    require_backend(kind)
    url, schema = await _seeded_database(kind, tmp_path)
    options = MonitoringOptions().set_credentials(USERNAME, PASSWORD)
    app = create_standalone_app(storage_from_url(url, schema), options)
    async with serve(app, lifespan=True) as base, httpx.AsyncClient(base_url=base) as client:
        home = await client.get("/")
        assert home.status_code == 307 and home.headers["location"] == f"{BASE}/"
        config = (await client.get(f"{API}/config")).json()
        assert config["readOnly"] is True and config["liveEvents"] is False
        login = await client.post(
            f"{API}/auth/login", json={"username": USERNAME, "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        tasks = (await client.get(f"{API}/tasks", headers=headers)).json()
        assert tasks["totalCount"] == 15
        failed = (
            await client.get(f"{API}/tasks", params={"statuses": "Failed"}, headers=headers)
        ).json()
        tid = failed["items"][0]["id"]
        detail = (await client.get(f"{API}/tasks/{tid}", headers=headers)).json()
        assert "boom" in detail["exception"] and detail["statusAudits"]
        assert detail["canRetry"] is False  # read-only
        logs = (await client.get(f"{API}/tasks/{tid}/execution-logs", headers=headers)).json()
        assert logs["totalCount"] == 2
        overview = (await client.get(f"{API}/dashboard/overview", headers=headers)).json()
        assert overview["totalTasksToday"] == 15
        queues = (await client.get(f"{API}/queues/configurations", headers=headers)).json()
        assert {q["queueName"] for q in queues} == {"default", "recurring", "reports"}
        assert all(q["configured"] is False for q in queues)
        for path in (f"/tasks/{tid}/retry", f"/tasks/{tid}/cancel", "/queues/default/pause"):
            refused = await client.post(f"{API}{path}", headers=headers)
            assert refused.status_code == 409
            assert "read-only" in refused.json()["message"]
        page = await client.get(f"{BASE}/tasks")
        assert page.status_code == 200 and "content-security-policy" in page.headers
        ws = base.replace("http", "ws") + f"{BASE}/ws"
        async with connect(
            ws, subprotocols=["evertask.v1", f"bearer.{login.json()['token']}"]
        ) as socket:
            hello = json.loads(await socket.recv())
            assert hello["type"] == "hello" and hello["liveEvents"] is False


async def test_standalone_shows_batches_and_refuses_to_cancel_them(tmp_path: Path) -> None:
    require_backend("sqlite")
    built = build_host("sqlite", tmp_path, options=lambda o: o.set_shutdown_grace_period(0.1))
    await built.host.start()
    try:
        gate = "standalone-held"
        batch = await built.host.dispatcher.dispatch_batch(
            [tasks.Stage(name="done", value=7), tasks.Stage(name="held", gate=gate)], name="b"
        )
        done = (await built.host.storage.batch_members(batch))[0]  # type: ignore[union-attr]
        await wait_status(built.host, done.id, QueuedTaskStatus.COMPLETED)
    finally:
        await built.host.stop()  # the held member stays unfinished: the batch is Running
    path = built.host.storage.path  # type: ignore[union-attr]
    options = MonitoringOptions().set_credentials(USERNAME, PASSWORD)
    app = create_standalone_app(storage_from_url(f"sqlite:///{path}"), options)
    async with serve(app, lifespan=True) as base, httpx.AsyncClient(base_url=base) as client:
        login = await client.post(
            f"{API}/auth/login", json={"username": USERNAME, "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        listed = (await client.get(f"{API}/batches", headers=headers)).json()
        assert [b["id"] for b in listed["items"]] == [str(batch)]
        detail = (await client.get(f"{API}/batches/{batch}", headers=headers)).json()
        assert (detail["status"], detail["succeeded"], detail["pending"]) == ("Running", 1, 1)
        assert detail["canCancel"] is False
        assert detail["members"][0]["result"] == {"name": "done", "value": 7}
        refused = await client.post(f"{API}/batches/{batch}/cancel", headers=headers)
        assert refused.status_code == 409 and "read-only" in refused.json()["message"]


def test_storage_urls_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="Unsupported storage URL"):
        storage_from_url("mongodb://localhost/db")
    with pytest.raises(ConfigurationError, match="needs a file"):
        storage_from_url("sqlite:///")


def test_sqlite_urls_and_paths_name_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend("sqlite")
    url, _ = asyncio.run(_seeded_database("sqlite", tmp_path))
    absolute = Path(url[len("sqlite:///") :])
    assert absolute.is_absolute()
    monkeypatch.chdir(absolute.parent)
    for form in (
        f"sqlite:///{absolute.name}",  # relative to the current directory
        f"sqlite:///{absolute}",  # four slashes: absolute
        str(absolute),
        absolute.name,
        f"./{absolute.name}",
    ):
        storage = storage_from_url(form)
        assert Path(storage.path).resolve() == absolute.resolve(), form  # type: ignore[attr-defined]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative_of_absolute = f"sqlite:///{str(absolute).lstrip('/')}"  # the three-slash slip
    with pytest.raises(ConfigurationError, match="sqlite:////") as error:
        storage_from_url(relative_of_absolute)
    assert "relative to the current directory" in str(error.value)
    for missing in ("sqlite:///nothing.db", str(tmp_path / "nothing.db")):
        with pytest.raises(ConfigurationError, match="does not exist"):
            storage_from_url(missing)
    with pytest.raises(ConfigurationError, match="is a directory"):
        storage_from_url(str(tmp_path))
    assert list(elsewhere.iterdir()) == []  # nothing was created
    assert not (tmp_path / "nothing.db").exists()


def test_command_line_prints_url_and_generated_password(tmp_path: Path) -> None:
    require_backend("sqlite")
    url, _ = asyncio.run(_seeded_database("sqlite", tmp_path))
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERTASK_MONITOR_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "evertask_monitor_api", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        for _ in range(50):
            banner += proc.stdout.readline()
            if "password:" in banner:
                break
        assert f"http://127.0.0.1:{port}{BASE}/" in banner and "read-only" in banner
        password = banner.split("password:")[1].split()[0]
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{API}/config", timeout=2) as r:
                    assert json.loads(r.read())["readOnly"] is True
                break
            except OSError:
                assert time.monotonic() < deadline, "the standalone monitor did not start"
                time.sleep(0.05)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{API}/auth/login",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["username"] == "admin"
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "evertask_monitor_api", "--storage", "redis://x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "Unsupported storage URL" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "evertask_monitor_api", "--storage", "sqlite:///missing.db"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "missing.db").exists()
