"""``evertask db``: upgrade, current, downgrade and sql on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from evertask_storage_efcore_like import head_revision
from tests.cli.conftest import Database, evertask, invoke, invoke_json


def test_upgrade_current_downgrade_and_back(database: Database) -> None:
    head = head_revision()
    if database.kind == "sqlite":  # reading commands never create the file
        missing = evertask("db", "current", *database.args)
        assert missing.returncode == 3 and "does not exist" in missing.stderr
        assert not Path(database.url).exists()
    else:
        empty = invoke_json("db", "current", *database.args)
        assert empty["revision"] is None and empty["is_head"] is False

    done = evertask("db", "upgrade", *database.args)
    assert done.returncode == 0, done.stderr
    assert f"to {head}" in done.stdout and "0001" in done.stdout
    again = invoke("db", "upgrade", *database.args)
    assert again.returncode == 0 and "nothing to do" in again.stdout

    state = invoke_json("db", "current", *database.args)
    assert state == {**state, "revision": head, "head": head, "is_head": True}
    assert invoke("db", "current", "--check", *database.args).returncode == 0

    down = evertask("db", "downgrade", "-1", "--yes", *database.args)
    assert down.returncode == 0, down.stderr
    assert f"reverted {head}" in down.stdout
    behind = invoke("db", "current", "--check", *database.args)
    assert behind.returncode == 1 and "not the head" in behind.stdout
    # the storage refuses tables at another revision: exit 3, naming the fix
    refused = evertask("tasks", "list", *database.args)
    assert refused.returncode == 3 and "evertask db upgrade" in refused.stderr

    unknown = invoke("db", "downgrade", "no-such-revision", "-y", *database.args)
    assert unknown.returncode == 1 and "no-such-revision" in unknown.stderr
    unconfirmed = invoke("db", "downgrade", "base", *database.args)  # no tty, no --yes
    assert unconfirmed.returncode == 1
    assert invoke_json("db", "current", *database.args)["revision"] != head

    assert invoke("db", "upgrade", *database.args).returncode == 0
    assert invoke_json("tasks", "list", *database.args)["total_count"] == 0
    base = invoke("db", "downgrade", "base", "-y", *database.args)
    assert base.returncode == 0 and "to base" in base.stdout


def test_sql_prints_the_upgrade_script(database: Database) -> None:
    done = evertask("db", "sql", *database.args)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE" in done.stdout and '"QueuedTasks"' in done.stdout
    if database.kind == "postgres":
        assert f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"' in done.stdout
    else:
        assert not Path(database.url).exists()  # nothing was connected to
    step = invoke("db", "sql", "--dialect", "mssql", "--from", "0003", "--to", "0004")
    assert step.returncode == 0 and "[EverTask]" in step.stdout
    assert (
        "version_num='0004'" in step.stdout
        and "CREATE TABLE [EverTask].[QueuedTasks]" not in step.stdout
    )
    both = invoke("db", "sql", "--dialect", "sqlite", *database.args)
    assert both.returncode == 2 and "exactly one" in both.stderr
