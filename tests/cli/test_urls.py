"""Storage URLs: every kind parsed and constructed (SQL Server too: only its URL, no server
here), clear errors for bad URLs, missing packages and unreachable databases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evertask.storage.urls import parse_storage_url, storage_from_url
from evertask_abstractions import ConfigurationError
from tests.cli.conftest import evertask, invoke


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("tasks.db", "sqlite"),
        ("sqlite:///tasks.db", "sqlite"),
        ("postgresql://u@h:5432/db", "postgres"),
        ("postgres://u@h/db", "postgres"),
        ("postgresql+asyncpg://u@h/db", "postgres"),
        ("mysql://u@h:3306/db", "mysql"),
        ("mariadb://u@h/db", "mysql"),
        ("mysql+aiomysql://u@h/db", "mysql"),
        ("mssql+aioodbc://u:p@h:1433/db", "mssql"),
        ("mssql://u:p@h/db", "mssql"),
        ("Driver={ODBC Driver 18 for SQL Server};Server=h,1433;Database=db;UID=u;PWD=p", "mssql"),
        ("Server=tcp:h,1433;Database=db;User Id=u;Password=p;Encrypt=True", "mssql"),
    ],
)
def test_urls_name_their_kind(url: str, kind: str) -> None:
    assert parse_storage_url(url).kind == kind


def test_server_urls_construct_their_storages() -> None:
    from evertask_storage_mssql import SqlServerTaskStorage
    from evertask_storage_mysql import MySqlTaskStorage
    from evertask_storage_postgres import PostgresTaskStorage

    pg = storage_from_url("postgres://u@h:5433/db", "tenant1")
    assert isinstance(pg, PostgresTaskStorage) and pg.schema == "tenant1"
    assert pg.url.port == 5433 and not pg.auto_apply_migrations
    maria = storage_from_url("mariadb://u:pw@h:3307/evertask")
    assert isinstance(maria, MySqlTaskStorage)
    assert maria.url.drivername == "mysql+aiomysql" and maria.url.database == "evertask"
    with pytest.raises(ConfigurationError, match="no schemas"):
        storage_from_url("mysql://u@h/db", "other")
    sql = storage_from_url("mssql+aioodbc://u:p@h:1433/db?driver=FreeTDS")
    assert isinstance(sql, SqlServerTaskStorage) and sql.schema == "EverTask"
    odbc = storage_from_url(
        "Driver={FreeTDS};Server=db.example,1433;Database=jobs;UID=u;PWD=secret", "ops"
    )
    assert isinstance(odbc, SqlServerTaskStorage) and odbc.schema == "ops"
    assert "db.example" in odbc.describe() and "secret" not in odbc.describe()


def test_bad_urls_and_missing_files_exit_3(tmp_path: Path) -> None:
    unsupported = evertask("tasks", "list", "--storage", "mongodb://h/db")
    assert unsupported.returncode == 3 and "Unsupported storage URL" in unsupported.stderr
    missing = invoke("nodes", "--storage", str(tmp_path / "none.db"))
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    assert invoke("nodes", "--storage", "sqlite:///").returncode == 3
    assert invoke("nodes").returncode == 2  # --storage is required (or $EVERTASK_STORAGE)
    malformed = invoke("nodes", "--storage", "postgresql://u@h:notaport/db")
    assert malformed.returncode == 3, malformed.stderr


def test_an_unreachable_database_exits_3() -> None:
    done = evertask("nodes", "--storage", "postgresql://nobody@127.0.0.1:1/db")
    assert done.returncode == 3
    assert "Cannot connect to PostgreSQL" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_storage_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evertask_storage_postgres", None)
    done = invoke("nodes", "--storage", "postgresql://u@h/db")
    assert done.returncode == 3
    assert "pip install 'evertask[postgres]'" in done.stderr


def test_the_core_imports_no_storage_nor_click() -> None:
    import subprocess

    code = (
        "import sys, evertask, evertask.cli, evertask.storage.urls; "
        "bad = [m for m in ('sqlalchemy', 'click', 'rich') if m in sys.modules]; "
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
