"""Standalone read-only monitor: ``python -m evertask_monitor_api --storage URL``.

Serves the API and dashboard against an existing EverTask database, without a host:
no live events and no management actions (those routes answer 409).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from evertask.storage.protocol import TaskStorage
from evertask.storage.urls import sqlite_path
from evertask.storage.urls import storage_from_url as _storage_from_url
from evertask_abstractions import ConfigurationError

from .app import create_storage_app
from .context import MonitorContext
from .options import MonitoringOptions

__all__ = ["create_standalone_app", "main", "sqlite_path", "storage_from_url"]

log = logging.getLogger("evertask.monitor")


def storage_from_url(url: str, schema: str | None = None) -> TaskStorage:
    """A storage for an existing database; migrations are verified, never applied.

    The forms of :func:`evertask.storage.urls.storage_from_url` (SQLite file or URL,
    PostgreSQL, MySQL/MariaDB, SQL Server); a missing SQLite file raises
    ``ConfigurationError``: the monitor never creates an empty database.
    """
    return _storage_from_url(url, schema)


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
        "a SQLite file path, postgresql://user@host:5432/db, mysql://user@host:3306/db "
        "or mssql+aioodbc://user:password@host:1433/db",
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
