"""Column types that behave the same on every database: UUIDs and aware UTC datetimes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CHAR, DateTime, Unicode, UnicodeText
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["GuidType", "UtcDateTime", "exact_text", "long_text", "to_utc"]

_NATIVE_UUID = frozenset({"postgresql", "mssql"})

_TEXTS: dict[int, str] = {}
"""The text of recently bound UUIDs, by value: a task's id is bound by its insert, its
status writes and audit rows, the node's id with every row, and ``str(uuid)`` is a Python
method costing about eight times a lookup here."""
_TEXTS_MAX = 4096
"""Entries kept before :data:`_TEXTS` starts over (an id missing is only formatted again)."""


def _uuid_text(value: uuid.UUID) -> str:
    """``str(value)``, remembered."""
    key = value.int
    text = _TEXTS.get(key)
    if text is None:
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        text = _TEXTS[key] = str(value)
    return text


class GuidType(TypeDecorator[uuid.UUID]):
    """A UUID: native ``uuid`` (PostgreSQL) / ``uniqueidentifier`` (SQL Server), else CHAR(36).

    CHAR(36) holds the canonical lowercase hyphenated form, whose text order equals the
    numeric order of the UUID (so keyset paging on ``(CreatedAtUtc, Id)`` is stable).
    """

    impl = CHAR(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        if dialect.name == "mssql":
            return dialect.type_descriptor(mssql.UNIQUEIDENTIFIER(as_uuid=True))
        return dialect.type_descriptor(CHAR(36))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        return value if dialect.name in _NATIVE_UUID else str(value)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        general = self.process_bind_param

        def process(value: Any) -> str | None:  # CHAR(36) needs no further processing
            if value.__class__ is uuid.UUID:
                return _uuid_text(value)
            return general(value, dialect)  # type: ignore[no-any-return]

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


def to_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime; naive input is refused (it is ambiguous)."""
    if value is None:
        return None
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value  # already UTC (the storages' own clocks): nothing to check or convert
    if not isinstance(value, datetime):
        raise TypeError(f"Expected a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"Naive datetime {value.isoformat()} cannot be stored; pass an aware "
            "datetime, e.g. datetime.now(UTC)."
        )
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC and always read back as an aware UTC ``datetime``.

    PostgreSQL keeps ``timestamptz``; the other databases store the naive UTC wall time
    (SQLite as fixed-width ISO text, so text comparisons order correctly). Naive input
    is refused: it is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        name = dialect.name
        if name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if name == "mssql":
            return dialect.type_descriptor(mssql.DATETIME2(precision=7))  # type: ignore[no-untyped-call]
        if name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if name == "sqlite":
            return dialect.type_descriptor(sqlite.DATETIME())  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        value = to_utc(value)
        if value is None or dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # one step instead of this type's then SQLite DATETIME's (a dict-based format):
        # the same fixed-width text, "YYYY-MM-DD HH:MM:SS.ffffff", of the naive UTC time
        def process(value: Any) -> str | None:
            utc = to_utc(value)
            if utc is None:
                return None
            return utc.isoformat(" ", "microseconds")[:26]  # without its "+00:00"

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def long_text() -> TypeEngine[str]:
    """Unbounded Unicode text: TEXT, NVARCHAR(max) on SQL Server, LONGTEXT on MySQL."""
    return (
        UnicodeText()
        .with_variant(mssql.NVARCHAR(), "mssql")
        .with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    )


def exact_text(length: int) -> TypeEngine[str]:
    """Bounded Unicode text compared and sorted by code point on every database.

    SQL Server and MySQL default to case-insensitive collations; task keys must be exact
    (``"Daily"`` and ``"daily"`` are two keys) and sorts must not depend on the server's
    default, so those columns get a binary collation there.
    """
    return (
        Unicode(length)
        .with_variant(mssql.NVARCHAR(length, collation="Latin1_General_100_BIN2"), "mssql")
        .with_variant(
            mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        )
    )
