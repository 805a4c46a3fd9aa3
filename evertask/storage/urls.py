"""A storage from a URL: what the ``evertask`` command line and the standalone monitor open.

Every storage package is imported only when a URL needs it, so importing this module
costs nothing (no SQLAlchemy); a URL whose package is not installed names the extra to
install. Accepted forms:

- SQLite: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` or a plain file path;
- PostgreSQL: ``postgresql://user@host:5432/db`` (``postgres://``, ``postgresql+asyncpg://``);
- MySQL / MariaDB: ``mysql://user@host:3306/db`` or ``mariadb://...`` (``+aiomysql``,
  ``+pymysql`` too);
- SQL Server: ``mssql+aioodbc://user:pw@host:1433/db`` (``mssql://``, ``mssql+pyodbc://``)
  or an ODBC / ADO.NET connection string (``Driver={...};Server=host,1433;Database=db;...``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evertask_abstractions import ConfigurationError

from .protocol import TaskStorage

__all__ = ["KINDS", "StorageUrl", "parse_storage_url", "sqlite_path", "storage_from_url"]

KINDS = ("sqlite", "postgres", "mysql", "mssql")
"""The storage kinds a URL can name."""

_SCHEMES: dict[str, str] = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql+asyncpg": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+aiomysql": "mysql",
    "mariadb+aiomysql": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "mssql": "mssql",
    "mssql+aioodbc": "mssql",
    "mssql+pyodbc": "mssql",
}

# (module, class, extra) of each kind
_CLASSES: dict[str, tuple[str, str, str]] = {
    "sqlite": ("evertask_storage_sqlite", "SqliteTaskStorage", "sqlite"),
    "postgres": ("evertask_storage_postgres", "PostgresTaskStorage", "postgres"),
    "mysql": ("evertask_storage_mysql", "MySqlTaskStorage", "mysql"),
    "mssql": ("evertask_storage_mssql", "SqlServerTaskStorage", "mssql"),
}

# the first keyword of an ODBC or ADO.NET connection string (SQL Server)
_CONNECTION_STRING_KEYS = frozenset(
    {
        "driver",
        "dsn",
        "server",
        "data source",
        "address",
        "addr",
        "network address",
        "database",
        "initial catalog",
        "uid",
        "user id",
        "trusted_connection",
        "integrated security",
    }
)

_FORMS = (
    "sqlite:///relative.db, sqlite:////abs/path.db, a SQLite file path, "
    "postgresql://user@host:5432/database, mysql://user@host:3306/database (or mariadb://), "
    "mssql+aioodbc://user:password@host:1433/database or an ODBC connection string "
    "(Driver={...};Server=...;Database=...)"
)


@dataclass(frozen=True, slots=True)
class StorageUrl:
    """A parsed storage URL: its kind and the argument its storage class takes."""

    kind: str
    """One of :data:`KINDS`."""
    target: str
    """The URL, connection string or (SQLite) file path given to the storage class."""

    @property
    def extra(self) -> str:
        """The ``evertask[...]`` extra that installs this kind's storage package."""
        return _CLASSES[self.kind][2]


def _is_connection_string(text: str) -> bool:
    if "://" in text or "=" not in text:
        return False
    first = text.split(";", 1)[0].split("=", 1)[0].strip().lower()
    return first in _CONNECTION_STRING_KEYS


def parse_storage_url(url: str) -> StorageUrl:
    """The kind of storage ``url`` names (no import, no file or network access)."""
    text = url.strip()
    if not text:
        raise ConfigurationError(f"An empty storage URL; use {_FORMS}.")
    if _is_connection_string(text):
        return StorageUrl("mssql", text)
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        kind = _SCHEMES.get(scheme)
        if kind is None:
            raise ConfigurationError(f"Unsupported storage URL {scheme!r}://...; use {_FORMS}.")
        return StorageUrl(kind, text)
    return StorageUrl("sqlite", text)  # a file path (or "sqlite:x.db", refused later)


def _sqlite_text(url: str) -> str:
    if url.startswith(("sqlite:", "sqlite+aiosqlite:")):
        prefix = url.split(":", 1)[0] + ":///"
        if not url.startswith(prefix) or url == prefix:
            raise ConfigurationError(
                f"A sqlite URL needs a file: sqlite:///relative/path.db, "
                f"sqlite:////absolute/path.db or a plain file path (got {url!r})."
            )
        return url[len(prefix) :]
    return url


def sqlite_path(url: str, *, must_exist: bool = True) -> Path:
    """The SQLite file named by ``url``.

    Accepted forms: ``sqlite:///relative/path.db`` (relative to the current directory,
    as in SQLAlchemy), ``sqlite:////absolute/path.db`` (four slashes) and a plain file
    path (``evertask.db``, ``./data/evertask.db``, ``/var/lib/app/evertask.db``, ``~/x.db``).
    With ``must_exist`` (the default) the file must exist: reading commands never create
    an empty database.
    """
    text = _sqlite_text(url)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigurationError(
            f"{path.resolve()} is a directory, not a SQLite database file (from --storage {url!r})."
        )
    if not must_exist:
        if not path.resolve().parent.is_dir():
            raise ConfigurationError(
                f"The directory {path.resolve().parent} of the SQLite database {url!r} does "
                "not exist; create it or choose another path."
            )
        return path
    hint = ""
    if url.startswith("sqlite:///") and not path.is_absolute():
        hint = (
            f" sqlite:///{text} is relative to the current directory ({Path.cwd()}); "
            f"for the absolute path /{text} write sqlite:////{text} or the plain path."
        )
    raise ConfigurationError(
        f"{path.resolve()} does not exist: no SQLite database file (from --storage {url!r})."
        f"{hint} Point it at the file your EverTask host writes (add_sqlite_storage(...))."
    )


def _load(kind: str) -> Any:
    module, name, extra = _CLASSES[kind]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise ConfigurationError(
            f"{module} is needed for this storage URL; install it with "
            f"pip install 'evertask[{extra}]' ({error})."
        ) from None


def storage_from_url(
    url: str,
    schema: str | None = None,
    *,
    auto_apply_migrations: bool = False,
    must_exist: bool = True,
) -> TaskStorage:
    """A storage (not opened) for the database ``url`` names.

    Args:
        url: see the module documentation for the accepted forms.
        schema: the schema holding the tables (PostgreSQL: default ``evertask``; SQL
            Server: default ``EverTask``; SQLite and MySQL have none).
        auto_apply_migrations: migrate the tables when the storage opens; by default the
            storage only verifies that they are at this version's revision.
        must_exist: (SQLite) the file must exist; ``False`` lets the storage create it.

    Raises:
        ConfigurationError: an unsupported or malformed URL, a missing SQLite file, or a
            storage package that is not installed (the message names the extra).
    """
    parsed = parse_storage_url(url)
    cls = _load(parsed.kind)
    kwargs: dict[str, Any] = {"auto_apply_migrations": auto_apply_migrations}
    if parsed.kind == "sqlite":
        if schema:
            raise ConfigurationError("SQLite has no schemas; leave --schema out for SQLite.")
        path = sqlite_path(parsed.target, must_exist=must_exist)
        return cls(str(path), **kwargs)  # type: ignore[no-any-return]
    if schema is not None:
        kwargs["schema"] = schema
    try:
        return cls(parsed.target, **kwargs)  # type: ignore[no-any-return]
    except ConfigurationError:
        raise
    except Exception as error:  # a malformed URL (SQLAlchemy's ArgumentError, ValueError)
        raise ConfigurationError(
            f"Malformed {parsed.kind} storage URL ({error}); use {_FORMS}."
        ) from None
