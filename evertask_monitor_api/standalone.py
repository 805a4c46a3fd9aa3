"""Standalone read-only monitor: ``python -m evertask_monitor_api --storage URL``.

Serves the API and dashboard against an existing EverTask database, without a host:
no live events and no management actions (those routes answer 409).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from evertask.storage.protocol import TaskStorage
from evertask_abstractions import ConfigurationError

from .app import create_storage_app
from .context import MonitorContext
from .options import MonitoringOptions

__all__ = ["create_standalone_app", "main", "sqlite_path", "storage_from_url"]

log = logging.getLogger("evertask.monitor")


def _load(module: str, name: str, extra: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise ConfigurationError(
            f"{module} is needed for this URL: pip install 'evertask[{extra},monitor]' ({error})."
        ) from None


def sqlite_path(url: str) -> Path:
    """The existing SQLite file named by ``url``.

    Accepted forms: ``sqlite:///relative/path.db`` (relative to the current directory,
    as in SQLAlchemy), ``sqlite:////absolute/path.db`` (four slashes) and a plain file
    path (``evertask.db``, ``./data/evertask.db``, ``/var/lib/app/evertask.db``, ``~/x.db``).
    The file must exist: the monitor never creates an empty database.
    """
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ConfigurationError(
                f"A sqlite URL needs a file: sqlite:///relative/path.db, "
                f"sqlite:////absolute/path.db or a plain file path (got {url!r})."
            )
        text = url[len("sqlite:///") :]
    else:
        text = url
    path = Path(text).expanduser()
    if path.is_file():
        return path
    where = path.resolve()
    hint = ""
    if url.startswith("sqlite:///") and not path.is_absolute():
        hint = (
            f" sqlite:///{text} is relative to the current directory ({Path.cwd()}); "
            f"for the absolute path /{text} write sqlite:////{text} or the plain path."
        )
    what = "is a directory, not" if path.is_dir() else "does not exist: no"
    raise ConfigurationError(
        f"{where} {what} SQLite database file (from --storage {url!r}).{hint} "
        "Point it at the file your EverTask host writes (add_sqlite_storage(...))."
    )


def storage_from_url(url: str, schema: str | None = None) -> TaskStorage:
    """A storage for an existing database; migrations are verified, never applied.

    SQLite: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain file path
    (see :func:`sqlite_path`; a missing file raises ``ConfigurationError``).
    PostgreSQL: ``postgresql://user@host:5432/db`` (``postgres://`` and
    ``postgresql+asyncpg://`` too).
    """
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        cls = _load("evertask_storage_postgres", "PostgresTaskStorage", "postgres")
        kwargs: dict[str, Any] = {"auto_apply_migrations": False}
        if schema is not None:
            kwargs["schema"] = schema
        return cls(url, **kwargs)  # type: ignore[no-any-return]
    if "://" in url and not url.startswith("sqlite:"):
        raise ConfigurationError(
            f"Unsupported storage URL {url.split('://', 1)[0]!r}://...; use "
            "sqlite:///relative.db, sqlite:////abs/path.db, a SQLite file path, "
            "or postgresql://user@host:5432/database."
        )
    path = sqlite_path(url)
    cls = _load("evertask_storage_sqlite", "SqliteTaskStorage", "sqlite")
    return cls(str(path), auto_apply_migrations=False)  # type: ignore[no-any-return]


def create_standalone_app(storage: TaskStorage, options: MonitoringOptions) -> FastAPI:
    """An app serving the read-only monitor at ``options.base_path`` ("/" redirects there)."""
    options.read_only = True
    context = MonitorContext(options, storage)
    monitor = create_storage_app(context)
    root = FastAPI(
        lifespan=monitor.router.lifespan_context, docs_url=None, redoc_url=None, openapi_url=None
    )
    root.state.evertask_monitor = context

    @root.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{options.base_path}/")

    root.mount(options.base_path, monitor)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m evertask_monitor_api",
        description="Read-only EverTask dashboard and API over an existing database.",
    )
    parser.add_argument(
        "--storage",
        required=True,
        help="an existing database: sqlite:///relative.db, sqlite:////abs/path.db, "
        "a SQLite file path, or postgresql://user@host:5432/db",
    )
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (default: evertask)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--base-path", default="/evertask-monitoring")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    try:
        storage = storage_from_url(args.storage, args.schema)
        options = MonitoringOptions(base_path=args.base_path).validate()
        app = create_standalone_app(storage, options)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    context: MonitorContext = app.state.evertask_monitor
    creds = context.credentials
    print(
        f"EverTask monitor (read-only) on http://{args.host}:{args.port}{options.base_path}/",
        flush=True,
    )
    if creds.generated:
        print(f"  username: {creds.username}  password: {creds.password}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
