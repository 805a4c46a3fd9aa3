"""The database goes away under load: every EverTask connection is killed, then PostgreSQL
restarts. Nothing is marked Failed for it, a dispatch during the outage gets a clear error,
and every acknowledged task completes afterwards."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from evertask import add_evertask
from evertask_abstractions import PersistenceError, QueuedTaskStatus
from tests.cluster.conftest import Cluster
from tests.cluster.node_child import Container, Work, WorkHandler
from tests.storage.conftest import PG_URL

Q = QueuedTaskStatus
LEASE_S = 3.0  # node_child's default


def _cluster_name() -> tuple[str, str] | None:
    """The local PostgreSQL cluster (version, name) that this test may restart."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return (versions[0], "main") if versions else None


def _pg_ctl(cluster: tuple[str, str], action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=True,
        capture_output=True,
        timeout=60,
    )
    if action == "start":
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"]).returncode:
            assert time.monotonic() < deadline, "PostgreSQL did not come back within 60 s"
            time.sleep(0.2)


async def _kill_connections() -> int:
    conn = await asyncpg.connect(PG_URL)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE 'evertask%' AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def _counts(spec: dict[str, Any]) -> dict[QueuedTaskStatus, int]:
    from evertask_storage_postgres import PostgresTaskStorage

    storage = PostgresTaskStorage(spec["url"], schema=spec["schema"])
    await storage.open()
    try:
        return await storage.count_by_status()
    finally:
        await storage.close()


@pytest.mark.parametrize("storage_spec", ["postgres"], indirect=True)
async def test_the_database_going_away_under_load_loses_and_fails_nothing(
    cluster: Cluster, storage_spec: dict[str, Any]
) -> None:
    pg = _cluster_name()
    if pg is None:
        pytest.skip("no local PostgreSQL cluster to restart (pg_ctlcluster)")
    cluster.start("w", parallelism=4, work_ms=25, dispatch=[0, 400])
    cluster.wait_file("dispatched-done-w")
    web = (
        add_evertask(Container(), lambda o: o.register_handler(WorkHandler).set_run_workers(False))
        .add_postgres_storage(storage_spec["url"], schema=storage_spec["schema"])
        .build()
    )
    await web.start()
    try:
        await asyncio.to_thread(
            cluster.wait_until, lambda: len(cluster.work("w")) >= 40, 30, "some ran"
        )
        assert await _kill_connections() > 0
        await asyncio.to_thread(_pg_ctl, pg, "stop")  # a restart, with a dispatch within
        try:
            with pytest.raises(PersistenceError, match="could not be persisted"):
                await web.dispatcher.dispatch(Work(n=10_000))
            await asyncio.sleep(LEASE_S + 1)  # the outage outlasts the node's lease
        finally:
            await asyncio.to_thread(_pg_ctl, pg, "start")
        deadline = time.monotonic() + 90
        while True:
            try:
                counts = await _counts(storage_spec)
            except Exception:
                counts = {}
            if counts.get(Q.COMPLETED, 0) == 400 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        out = cluster.output("w")
        assert counts.get(Q.COMPLETED, 0) == 400, (counts, out[-3000:])
        assert Q.FAILED not in counts
        # it stopped starting tasks before its lease ended, and rejoined once it could
        assert "starts no new task until its lease is renewed" in out, out[-3000:]
        assert "lost its lease; it rejoins as" in out, out[-3000:]
    finally:
        await web.stop()
    cluster.stop("w")
