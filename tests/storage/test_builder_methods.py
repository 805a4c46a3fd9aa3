"""The builder's plug-in methods: typed signatures (a mistyped option is a type error, not a
run-time surprise) that match the plug-in functions and the storages, lazy imports, and a
missing optional dependency named with the extra to install."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evertask import add_evertask
from evertask.builder import EverTaskServiceBuilder
from evertask.telemetry import add_opentelemetry
from evertask_abstractions import CancellationToken, ConfigurationError, EverTask, EverTaskHandler
from evertask_logging import add_structured_logging
from evertask_logging.sink import Format
from evertask_monitor_api import MonitoringOptions, MonitoringSettings, add_monitoring_api
from evertask_storage_mssql import SqlServerTaskStorage, add_sqlserver_storage
from evertask_storage_mysql import MySqlTaskStorage, add_mysql_storage
from evertask_storage_postgres import PostgresTaskStorage, add_postgres_storage
from evertask_storage_sqlite import SqliteTaskStorage, add_sqlite_storage

ROOT = Path(__file__).resolve().parents[2]
P = inspect.Parameter

STORAGES: list[tuple[str, Callable[..., Any], type]] = [
    ("add_sqlite_storage", add_sqlite_storage, SqliteTaskStorage),
    ("add_postgres_storage", add_postgres_storage, PostgresTaskStorage),
    ("add_sqlserver_storage", add_sqlserver_storage, SqlServerTaskStorage),
    ("add_mysql_storage", add_mysql_storage, MySqlTaskStorage),
]


def _params(function: Callable[..., Any], skip: int) -> list[tuple[str, Any, Any, str]]:
    """(name, kind, default, annotation text) of each parameter after the first ``skip``."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    return [(p.name, p.kind, p.default, str(p.annotation)) for p in parameters]


@pytest.mark.parametrize(("method", "function", "storage"), STORAGES, ids=lambda v: str(v)[:20])
def test_storage_methods_spell_out_the_storage_options(
    method: str, function: Callable[..., Any], storage: type
) -> None:
    on_builder = _params(getattr(EverTaskServiceBuilder, method), 1)
    assert all(kind is not P.VAR_KEYWORD for _, kind, _, _ in on_builder)
    assert on_builder == _params(function, 1)
    # the storage's own parameters, except the clock (the host's), plus the retention pair
    own = [p for p in _params(storage.__init__, 1) if p[0] != "now"]
    assert [p for p in on_builder if not p[0].startswith("retention")] == own
    assert [p[0] for p in on_builder if p[0].startswith("retention")] == [
        "retention",
        "retention_interval",
    ]


def test_plugin_methods_match_their_functions() -> None:
    def shape(function: Callable[..., Any], skip: int) -> list[tuple[str, Any, Any]]:
        return [p[:3] for p in _params(function, skip)]

    assert shape(EverTaskServiceBuilder.add_opentelemetry, 1) == shape(add_opentelemetry, 1)
    assert shape(EverTaskServiceBuilder.add_structured_logging, 1) == shape(
        add_structured_logging, 1
    )
    assert typing.get_args(Format) == ("json", "console")
    assert shape(EverTaskServiceBuilder.add_monitoring_api, 1) == shape(add_monitoring_api, 1)
    options = inspect.signature(EverTaskServiceBuilder.add_monitoring_api).parameters["options"]
    assert options.annotation == "Unpack[MonitoringSettings]"


def test_monitoring_settings_are_the_options_fields() -> None:
    fields = {f.name for f in dataclasses.fields(MonitoringOptions)}
    settings = typing.get_type_hints(MonitoringSettings)
    assert set(settings) == fields
    assert settings == {
        name: hint
        for name, hint in typing.get_type_hints(MonitoringOptions).items()
        if name in fields
    }


def test_a_mistyped_option_is_a_type_error(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from evertask.builder import add_evertask

            builder = add_evertask(None)
            builder.add_sqlite_storage("a.db", busy_timeout=2.0, readers=4)
            builder.add_sqlite_storage("a.db", busy_timeut=2.0)
            builder.add_postgres_storage("postgresql://h/db", pool_size="3")
            builder.add_mysql_storage("mysql://h/db", pool_recycel=60.0)
            builder.add_sqlserver_storage("Server=h;Database=d", shema="Jobs")
            builder.add_structured_logging(format="xml")
            """
        )
    )
    # only the builder module is analysed (its imports are Any): fast, and enough for its
    # signatures
    out, _, status = mypy_api.run(
        [
            "--config-file=",
            "--strict",
            "--follow-imports=skip",
            "--no-incremental",
            f"--cache-dir={os.devnull}",
            str(snippet),
            str(ROOT / "evertask" / "builder.py"),
        ]
    )
    errors = {
        int(line.split(":")[1]): line
        for line in out.splitlines()
        if line.startswith(str(snippet)) and ": error:" in line
    }
    assert status == 1
    assert sorted(errors) == [6, 7, 8, 9, 10], out
    assert 'Unexpected keyword argument "busy_timeut"' in errors[6]
    assert 'did you mean "busy_timeout"' in errors[6]
    assert '"pool_size"' in errors[7] and 'expected "int"' in errors[7]
    assert '"pool_recycel"' in errors[8] and '"shema"' in errors[9]
    assert '"format"' in errors[10]


class Ping(EverTask):
    pass


class PingHandler(EverTaskHandler[Ping]):
    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        pass


def test_the_options_reach_the_storage(tmp_path: Path) -> None:
    host = (
        add_evertask(None, lambda o: o.register_handler(PingHandler))
        .add_sqlite_storage(tmp_path / "o.db", busy_timeout=1.5, synchronous="full")
        .build()
    )
    storage = host.storage
    assert isinstance(storage, SqliteTaskStorage)
    assert storage.busy_timeout == 1.5 and storage.synchronous == "FULL"
    with pytest.raises(ConfigurationError, match="synchronous"):
        add_evertask(None).add_sqlite_storage(tmp_path / "o.db", synchronous="SOMETIMES")


# -- a missing optional dependency ---------------------------------------------------------
@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``hide("sqlalchemy")``: that module cannot be imported, and the plug-in packages are
    imported afresh (everything is put back afterwards)."""
    before = set(sys.modules)

    def hide_modules(*missing: str) -> None:
        for name in list(sys.modules):
            if name.startswith(("evertask_storage_", "evertask_monitor_api", "evertask_logging")):
                monkeypatch.delitem(sys.modules, name)
        for name in missing:
            monkeypatch.setitem(sys.modules, name, None)

    yield hide_modules
    for name in set(sys.modules) - before:  # half-imported leftovers of the failed imports
        del sys.modules[name]


@pytest.mark.parametrize(
    ("method", "arguments", "missing", "package", "extra"),
    [
        ("add_sqlite_storage", ("a.db",), "sqlalchemy", "sqlalchemy", "sqlite"),
        ("add_postgres_storage", ("postgresql://h/db",), "asyncpg", "asyncpg", "postgres"),
        ("add_mysql_storage", ("mysql://h/db",), "sqlalchemy", "sqlalchemy", "mysql"),
        ("add_sqlserver_storage", ("Server=h;Database=d",), "alembic", "alembic", "sqlserver"),
        ("add_monitoring_api", (), "jwt", "pyjwt", "monitor"),
        ("add_monitoring_api", (), "fastapi", "fastapi", "monitor"),
    ],
)
def test_a_missing_dependency_names_the_extra(
    hide: Callable[..., None],
    method: str,
    arguments: tuple[Any, ...],
    missing: str,
    package: str,
    extra: str,
) -> None:
    hide(missing)
    builder = add_evertask(None)
    with pytest.raises(ConfigurationError) as caught:
        getattr(builder, method)(*arguments)
    message = str(caught.value)
    assert message.startswith(f"{method}() needs the optional package {package!r} (")
    assert missing in message
    assert message.endswith(f'install it with pip install "evertask[{extra}]"')


@pytest.mark.parametrize(
    ("method", "arguments", "missing", "package", "extra"),
    [
        (
            "add_sqlite_storage",
            ("a.db",),
            "evertask_storage_sqlite",
            "evertask-storage-sqlite",
            "sqlite",
        ),
        (
            "add_postgres_storage",
            ("postgresql://h/db",),
            "evertask_storage_postgres",
            "evertask-storage-postgres",
            "postgres",
        ),
        (
            "add_mysql_storage",
            ("mysql://h/db",),
            "evertask_storage_mysql",
            "evertask-storage-mysql",
            "mysql",
        ),
        (
            "add_sqlserver_storage",
            ("Server=h;Database=d",),
            "evertask_storage_mssql",
            "evertask-storage-sqlserver",
            "sqlserver",
        ),
        ("add_structured_logging", (), "evertask_logging", "evertask-logging", "logging"),
        ("add_monitoring_api", (), "evertask_monitor_api", "evertask-monitor-api", "monitor"),
    ],
)
def test_a_missing_plugin_distribution_names_the_extra(
    hide: Callable[..., None],
    method: str,
    arguments: tuple[Any, ...],
    missing: str,
    package: str,
    extra: str,
) -> None:
    """Each plug-in package is a distribution of its own: not installed, it is an extra."""
    hide(missing)
    with pytest.raises(ConfigurationError) as caught:
        getattr(add_evertask(None), method)(*arguments)
    message = str(caught.value)
    assert message.startswith(f"{method}() needs the optional package {package!r} (")
    assert message.endswith(f'install it with pip install "evertask[{extra}]"')


def test_a_missing_module_of_evertask_itself_is_not_blamed_on_an_extra(
    hide: Callable[..., None],
) -> None:
    hide("evertask_storage_efcore_like")
    with pytest.raises(ModuleNotFoundError, match="evertask_storage_efcore_like"):
        add_evertask(None).add_sqlite_storage("a.db")


def test_the_builder_imports_no_plugin_package() -> None:
    import subprocess

    code = (
        "import sys, evertask.builder; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'fastapi', 'jwt', 'evertask_storage_efcore_like', "
        "'evertask_monitor_api', 'evertask_logging')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"
