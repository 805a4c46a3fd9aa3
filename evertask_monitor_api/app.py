"""The monitoring ASGI app: REST API, WebSocket, dashboard, and the middlewares around them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from evertask.storage.protocol import TaskStorage

from . import ui, websocket
from .access import AccessControlMiddleware
from .context import MonitorContext
from .limits import AUTH_PREFIX, BodyLimitMiddleware, relative_path, safe_text, validation_response
from .routes import auth, batches, config, dashboard, nodes, queues, ratelimits, statistics, tasks
from .routes.config import package_version
from .routes.deps import CONTEXT_KEY

__all__ = ["build_app", "create_storage_app"]

_DESCRIPTION = """\
Monitoring and management API of EverTask for Python.

Log in with `POST /api/auth/login` and send the token as `Authorization: Bearer <token>`.
Live events stream over the WebSocket at `../ws` (see docs/monitoring.md).
"""


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"message": safe_text(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 without the input; an invalid login body counts as a failed login."""
    assert isinstance(exc, RequestValidationError)
    if request.scope.get("endpoint") is auth.login:
        context: MonitorContext = getattr(request.app.state, CONTEXT_KEY)
        wait = auth.count_invalid_login(context, request.scope)
        if wait is not None:
            return await _http_error(request, auth.too_many_logins(wait))
    return validation_response(exc)


def _refused_body(context: MonitorContext) -> Callable[[Scope], None]:
    def refused(scope: Scope) -> None:
        if relative_path(scope) == f"{AUTH_PREFIX}login":
            auth.count_invalid_login(context, scope)

    return refused


def build_app(context: MonitorContext, **fastapi_options: Any) -> FastAPI:
    """The monitoring app for ``context``; mount it at ``context.options.base_path``."""
    opts = context.options
    app = FastAPI(
        title="EverTask Monitoring API",
        version=package_version(),
        description=_DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs" if opts.enable_swagger else None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        **fastapi_options,
    )
    setattr(app.state, CONTEXT_KEY, context)
    api = APIRouter(prefix="/api")
    for module in (auth, config, tasks, batches, dashboard, queues, nodes, ratelimits, statistics):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(websocket.router)
    if opts.enable_ui:
        app.mount("/assets", ui.assets_app(), name="assets")
        app.include_router(ui.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_middleware(
        BodyLimitMiddleware,
        auth_limit=opts.max_auth_body_bytes,
        limit=opts.max_body_bytes,
        on_refused=_refused_body(context),
    )
    app.add_middleware(ui.SecurityHeadersMiddleware, swagger=opts.enable_swagger)
    if opts.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(opts.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(
        AccessControlMiddleware, resolver=context.resolver, allowed=opts.allowed_networks()
    )
    return app


def create_storage_app(context: MonitorContext) -> FastAPI:
    """A read-only app over a storage that opens and closes it with the app's lifespan."""
    storage: TaskStorage = context.storage

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        opened = not context.ready
        if opened:
            await storage.open()
        context.announce()
        try:
            yield
        finally:
            context.closing.set()
            if opened:
                await storage.close()

    return build_app(context, lifespan=lifespan)
