"""Precompiled statements: positional arguments in the driver's order, from named params."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Unicode, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from evertask_storage_efcore_like.precompiled import Precompiled
from evertask_storage_efcore_like.types import GuidType, UtcDateTime

_METADATA = MetaData()
_ROWS = Table(
    "Rows",
    _METADATA,
    Column("Id", GuidType(), primary_key=True),
    Column("Name", Unicode(20)),
    Column("At", UtcDateTime()),
    Column("Count", Integer()),
)
SQLITE = sqlite.dialect()  # type: ignore[no-untyped-call]


def test_arguments_follow_the_statement_with_the_types_conversions() -> None:
    statement = Precompiled(insert(_ROWS), SQLITE)
    row_id = uuid.uuid4()
    at = datetime(2026, 12, 5, 8, 30, 1, 250, tzinfo=UTC)
    args = statement.args({"Count": 3, "At": at, "Name": "a", "Id": row_id})
    assert statement.sql.startswith('INSERT INTO "Rows" ("Id", "Name", "At", "Count")')
    assert args == (str(row_id), "a", "2026-12-05 08:30:01.000250", 3)
    # None passes through untouched (the types' conversions never see it)
    assert statement.args({"Id": row_id, "Name": None, "At": None, "Count": None}) == (
        str(row_id),
        None,
        None,
        None,
    )


def test_a_missing_parameter_is_named_with_the_statement() -> None:
    statement = Precompiled(insert(_ROWS), SQLITE)
    with pytest.raises(KeyError) as raised:
        statement.args({"Id": uuid.uuid4(), "Name": "a", "Count": 1})
    assert raised.value.args[0].startswith("Missing bind parameter 'At' for: INSERT INTO")


def test_a_bind_with_a_value_is_a_default_the_params_override() -> None:
    statement = Precompiled(
        select(_ROWS.c.Id).where(
            _ROWS.c.Count > bindparam("least", 5), _ROWS.c.Name == bindparam("name")
        ),
        SQLITE,
    )
    assert statement.names == ("least", "name")
    assert statement.args({"name": "a"}) == (5, "a")
    assert statement.args({"name": "a", "least": 7}) == (7, "a")


def test_one_and_no_parameters() -> None:
    one = Precompiled(select(_ROWS.c.Id).where(_ROWS.c.Id == bindparam("id")), SQLITE)
    row_id = uuid.uuid4()
    assert one.args({"id": row_id}) == (str(row_id),)
    none = Precompiled(select(_ROWS.c.Id), SQLITE)
    assert none.names == () and none.args({}) == ()


def test_numeric_dollar_dialects_work_and_named_ones_are_refused() -> None:
    asyncpg = postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    statement = Precompiled(select(_ROWS.c.Id).where(_ROWS.c.Name == bindparam("n")), asyncpg)
    assert "$1" in statement.sql and statement.args({"n": "x"}) == ("x",)
    named = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]
    with pytest.raises(ValueError, match="positional paramstyle"):
        Precompiled(select(_ROWS.c.Id).where(_ROWS.c.Name == bindparam("n")), named)


class _Source:
    """An object holding a row's values as attributes (one of them nested)."""

    def __init__(self, row_id: uuid.UUID, name: str | None, at: datetime | None) -> None:
        self.id = row_id
        self.inner = _Inner(name)
        self.at = at
        self.count = 4


class _Inner:
    def __init__(self, name: str | None) -> None:
        self.name = name


_PATHS = {"Id": "id", "Name": "inner.name", "At": "at", "Count": "count"}


def test_a_reader_gives_what_args_gives_for_the_same_values() -> None:
    statement = Precompiled(insert(_ROWS), SQLITE)
    read = statement.reader(_PATHS)
    at = datetime(2026, 12, 5, 8, 30, 1, 250, tzinfo=UTC)
    for source in (_Source(uuid.uuid4(), "a", at), _Source(uuid.uuid4(), None, None)):
        params = {"Id": source.id, "Name": source.inner.name, "At": source.at, "Count": 4}
        assert read(source) == statement.args(params)
    assert read(_Source(uuid.uuid4(), "b", at))[2] == "2026-12-05 08:30:01.000250"


def test_a_reader_needs_an_attribute_for_every_parameter() -> None:
    statement = Precompiled(insert(_ROWS), SQLITE)
    with pytest.raises(ValueError, match=r"No attribute for the bind parameters \['At'\]"):
        statement.reader({"Id": "id", "Name": "inner.name", "Count": "count"})


def test_a_reader_of_one_and_of_no_parameters() -> None:
    one = Precompiled(select(_ROWS.c.Id).where(_ROWS.c.Id == bindparam("id")), SQLITE)
    source = _Source(uuid.uuid4(), "a", None)
    assert one.reader({"id": "id"})(source) == (str(source.id),)
    none = Precompiled(select(_ROWS.c.Id), SQLITE)
    assert none.reader({})(source) == ()
