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
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from evertask.storage.protocol import TaskStorage
from evertask_abstractions import ConfigurationError

from .app import create_storage_app
from .context import MonitorContext
from .options import MonitoringOptions

__all__ = ["create_standalone_app", "main", "storage_from_url"]

log = logging.getLogger("evertask.monitor")


def _load(module: str, name: str, extra: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise ConfigurationError(
            f"{module} is needed for this URL: pip install 'evertask[{extra},monitor]' ({error})."
        ) from None


def storage_from_url(url: str, schema: str | None = None) -> TaskStorage:
    """A storage for ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or
    ``postgresql://user@host/db``; migrations are verified, never applied."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ConfigurationError("A sqlite URL needs a file: sqlite:///path/to/evertask.db")
        cls = _load("evertask_storage_sqlite", "SqliteTaskStorage", "sqlite")
        return cls(path, auto_apply_migrations=False)  # type: ignore[no-any-return]
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        cls = _load("evertask_storage_postgres", "PostgresTaskStorage", "postgres")
        kwargs: dict[str, Any] = {"auto_apply_migrations": False}
        if schema is not None:
            kwargs["schema"] = schema
        return cls(url, **kwargs)  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"Unsupported storage URL {url.split('://', 1)[0]!r}://...; use sqlite:///path.db "
        "or postgresql://user@host:5432/database."
    )


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
    parser.add_argument("--storage", required=True, help="sqlite:///path.db or postgresql://...")
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
