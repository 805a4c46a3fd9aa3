"""None is bound through an identity adapter (a registry hit, not a failed lookup)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from evertask.storage.protocol import FAST_PATHS_ENV
from evertask_storage_sqlite import SqliteTaskStorage
from evertask_storage_sqlite.binding import bind_none_directly

_KEY = (type(None), sqlite3.PrepareProtocol)


@pytest.fixture
def no_none_adapter() -> Iterator[None]:
    """The registry without an adapter for None, as before this process bound anything;
    whatever was registered is put back afterwards."""
    saved = sqlite3.adapters.pop(_KEY, None)
    try:
        yield
    finally:
        sqlite3.adapters.pop(_KEY, None)
        if saved is not None:
            sqlite3.adapters[_KEY] = saved


@pytest.mark.usefixtures("no_none_adapter")
async def test_a_storage_binds_none_through_the_identity_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FAST_PATHS_ENV, raising=False)
    storage = SqliteTaskStorage(str(tmp_path / "a.db"))
    await storage.open()
    try:
        assert _KEY in sqlite3.adapters
        assert bind_none_directly()
    finally:
        await storage.close()
    # the process-wide adapter changes nothing that is stored: None is still NULL
    cx = sqlite3.connect(":memory:")
    cx.execute("CREATE TABLE t (a, b TEXT, c INTEGER)")
    cx.execute("INSERT INTO t VALUES (?, ?, ?)", (None, None, 1))
    cx.executemany("INSERT INTO t VALUES (?, ?, ?)", [(None, "x", None)])
    assert cx.execute("SELECT typeof(a), typeof(b), typeof(c) FROM t").fetchall() == [
        ("null", "null", "integer"),
        ("null", "text", "null"),
    ]


@pytest.mark.usefixtures("no_none_adapter")
def test_an_adapter_the_application_registered_is_kept() -> None:
    def mine(value: None) -> str:
        return "none"

    sqlite3.register_adapter(type(None), mine)
    assert not bind_none_directly()
    assert sqlite3.adapters[_KEY] is mine


@pytest.mark.usefixtures("no_none_adapter")
def test_off_with_the_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAST_PATHS_ENV, "0")
    assert not bind_none_directly()
    assert _KEY not in sqlite3.adapters
