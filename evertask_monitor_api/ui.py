"""The built dashboard (single-page app) and the security headers of every response."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DASHBOARD_CSP",
    "STATIC_DIR",
    "SecurityHeadersMiddleware",
    "assets_app",
    "dashboard_built",
    "router",
]

STATIC_DIR = Path(__file__).parent / "static"
BASE_PLACEHOLDER = "/__evertask_base__/"

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"

router = APIRouter(include_in_schema=False)


def dashboard_built() -> bool:
    """Whether the dashboard's build ships with this installation."""
    return (STATIC_DIR / "index.html").is_file()


@cache
def _index_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def assets_app() -> StaticFiles:
    """The dashboard's JavaScript, CSS and images (``check_dir=False``: may be unbuilt)."""
    return StaticFiles(directory=STATIC_DIR / "assets", check_dir=False)


def _index(request: Request) -> HTMLResponse:
    if not dashboard_built():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The dashboard is not built in this installation; run `make ui` in a source "
            "checkout (the API under ./api works without it).",
        )
    base = str(request.scope.get("root_path", "")).rstrip("/") + "/"
    page = _index_template().replace(BASE_PLACEHOLDER, html.escape(base, quote=True))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def index(request: Request) -> HTMLResponse:
    """The dashboard."""
    return _index(request)


@router.get("/{path:path}")
async def spa(request: Request, path: str) -> HTMLResponse:
    """Client-side routes of the dashboard (``/tasks/...``, ``/live``...)."""
    if path in ("api", "ws") or path.startswith(("api/", "assets/")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return _index(request)


class SecurityHeadersMiddleware:
    """Adds ``nosniff``, ``no-referrer``, frame denial, and a Content-Security-Policy:
    a restrictive one for the dashboard, ``default-src 'none'`` for API responses."""

    def __init__(self, app: ASGIApp, *, swagger: bool = False) -> None:
        self.app = app
        self.swagger = swagger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = str(scope.get("root_path", ""))
        path = str(scope.get("path", ""))
        local = path[len(root) :] if root and path.startswith(root) else path
        is_api = local == "/api" or local.startswith("/api/")
        is_docs = self.swagger and local.startswith("/api/docs")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if is_api:
                    headers.setdefault("Cache-Control", "no-store")
                    if not is_docs:
                        headers.setdefault("Content-Security-Policy", API_CSP)
                else:
                    headers.setdefault("Content-Security-Policy", DASHBOARD_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)
