"""``/config``: what the dashboard needs before login (anonymous)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from evertask.version import __version__

from ..schemas import ConfigResponse
from .deps import AUTH_RESPONSES, Context

__all__ = ["package_version", "router"]

router = APIRouter(tags=["config"])


def package_version() -> str:
    """The EverTask version (every EverTask distribution has the same one)."""
    return __version__


@router.get("/config", response_model=ConfigResponse, responses={403: AUTH_RESPONSES[403]})
async def config(request: Request, context: Context) -> ConfigResponse:
    """Paths (as mounted), whether login is required, read-only mode and live events."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    opts = context.options
    return ConfigResponse(
        api_base_path=f"{base}/api",
        ui_base_path=base or "/",
        web_socket_path=f"{base}/ws",
        require_authentication=opts.enable_authentication,
        ui_enabled=opts.enable_ui,
        event_debounce_ms=opts.event_debounce_ms,
        read_only=context.read_only,
        live_events=context.live_events,
        version=package_version(),
        docs_url=opts.docs_url,
    )
