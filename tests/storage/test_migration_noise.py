"""Migrations are quiet: Alembic's INFO lines (import-time plugin set-up, "Context impl",
"Will assume non-transactional DDL", "Running upgrade") never reach the application's log;
a start that applies migrations logs exactly one INFO line naming them, an up-to-date
start logs nothing about migrations."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from evertask import add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler
from evertask_storage_efcore_like import head_revision
from evertask_storage_postgres import PostgresTaskStorage

from .conftest import PG_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "evertask.storage.migrations"


class Ping(EverTask):
    pass


class PingHandler(EverTaskHandler[Ping]):
    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        pass


def _migration_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno <= logging.INFO and r.name.startswith(("alembic", LOGGER))
    ]


async def test_host_start_logs_one_line_on_a_fresh_file_and_none_when_up_to_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "quiet.db"
    for _ in range(2):
        host = (
            add_evertask(None, lambda o: o.register_handler(PingHandler))
            .add_sqlite_storage(path)
            .build()
        )
        async with host:
            await host.wait_recovered(10)
    lines = _migration_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    (line,) = lines
    assert line.name == LOGGER and line.levelno == logging.INFO
    revisions = sorted(p.stem.split("_")[0] for p in _versions())
    assert all(revision in line.getMessage() for revision in revisions)
    assert head_revision() in line.getMessage()


def _versions() -> list[Path]:
    folder = ROOT / "evertask_storage_efcore_like" / "migrations" / "versions"
    return [p for p in folder.glob("*.py") if p.stem[0].isdigit()]


async def test_postgres_start_quiet_when_up_to_date(caplog: pytest.LogCaptureFixture) -> None:
    require_postgres()
    schema = f"evertask_quiet_{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG)
    try:
        for expected in (1, 0):
            caplog.clear()
            storage = PostgresTaskStorage(PG_URL, schema=schema)
            await storage.open()
            await storage.close()
            lines = _migration_lines(caplog)
            assert len(lines) == expected, [r.getMessage() for r in lines]
        storage = PostgresTaskStorage(PG_URL, schema=schema, auto_apply_migrations=False)
        caplog.clear()
        await storage.open()
        await storage.close()
        assert _migration_lines(caplog) == []
    finally:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def test_import_and_start_print_nothing_but_the_one_line(tmp_path: Path) -> None:
    """A process whose root logger shows INFO: importing the storage (and with it Alembic)
    and opening it twice writes exactly one line."""
    script = textwrap.dedent(
        """
        import asyncio, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
        from evertask_storage_sqlite import SqliteTaskStorage

        async def main():
            for _ in range(2):
                storage = SqliteTaskStorage(sys.argv[1])
                await storage.open()
                await storage.close()

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "fresh.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if not line.startswith("asyncio ")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{LOGGER} Applied EverTask migration(s) ")


def test_the_quiet_filter_leaves_other_threads_and_warnings_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from evertask_storage_efcore_like.alembic_log import quiet_alembic

    caplog.set_level(logging.DEBUG)
    alembic_log = logging.getLogger("alembic.runtime.migration")
    with quiet_alembic():
        alembic_log.info("dropped")
        alembic_log.warning("kept")
    alembic_log.info("outside")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == [
        "kept",
        "outside",
    ]
