"""MySqlTaskStorage configuration: URLs, the empty schema, the builder extension."""

from __future__ import annotations

from typing import Any

import pytest

from evertask.options import EverTaskOptions
from evertask_abstractions import ConfigurationError
from evertask_storage_mysql import MySqlTaskStorage, add_mysql_storage, aiomysql_url


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:p@h:3306/db",
        "mariadb://u:p@h:3306/db",
        "mysql+aiomysql://u:p@h:3306/db",
        "mysql+pymysql://u:p@h:3306/db",
    ],
)
def test_urls_use_aiomysql_and_utf8mb4(url: str) -> None:
    converted = aiomysql_url(url)
    assert converted.drivername == "mysql+aiomysql"
    assert converted.query["charset"] == "utf8mb4"
    assert converted.database == "db" and converted.password == "p"


def test_explicit_charset_is_kept() -> None:
    assert aiomysql_url("mysql://h/db?charset=utf8mb3").query["charset"] == "utf8mb3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/db", "mysql:// or mariadb://"),
        ("mysql://u@h:3306", "names no database"),
        ("not a url", "Malformed MySQL URL"),
    ],
)
def test_bad_urls_raise_clear_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MySqlTaskStorage(url)


def test_schema_must_stay_empty() -> None:
    assert MySqlTaskStorage("mysql://h/db", schema="").schema is None
    assert MySqlTaskStorage("mysql://h/db", schema=None).tables.tasks.schema is None
    with pytest.raises(ConfigurationError, match=r"mysql://user@host:3306/evertask"):
        MySqlTaskStorage("mysql://h/db", schema="evertask")


def test_describe_hides_the_password() -> None:
    text = MySqlTaskStorage("mysql://u:s3cret@h:3307/db").describe()
    assert text == "MySQL at mysql://u:***@h:3307/db"


def test_builder_extension_registers_the_storage() -> None:
    registered: list[Any] = []

    class Builder:
        def use_storage(self, factory: Any) -> None:
            registered.append(factory)

        def add_component(self, component: Any) -> None:
            registered.append(component)

    builder = Builder()
    assert add_mysql_storage(builder, "mariadb://u@h/db", pool_size=3) is builder
    storage = registered[0](EverTaskOptions())
    assert isinstance(storage, MySqlTaskStorage) and storage.pool_size == 3
    with pytest.raises(ConfigurationError, match="schemas"):
        add_mysql_storage(builder, "mysql://u@h/db", schema="x")
