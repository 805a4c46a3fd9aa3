"""Route dependencies: the context, the authenticated user, readiness, write access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..context import MonitorContext
from ..schemas import MessageResponse

__all__ = [
    "AUTH_RESPONSES",
    "CONTEXT_KEY",
    "READ_RESPONSES",
    "WRITE_RESPONSES",
    "Context",
    "User",
    "bearer",
    "get_context",
    "require_ready",
    "require_user",
    "require_writable",
]

CONTEXT_KEY = "evertask_monitor"

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Login token")

_MESSAGE: dict[str, Any] = {"model": MessageResponse}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_MESSAGE, "description": "Missing, invalid or expired token"},
    403: {**_MESSAGE, "description": "Client address not in the allow-list"},
}
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    503: {**_MESSAGE, "description": "The host or storage is not running"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    404: {**_MESSAGE, "description": "Not found"},
    409: {**_MESSAGE, "description": "Not possible in the current state, or read-only mode"},
}


def get_context(request: Request) -> MonitorContext:
    """The app's :class:`MonitorContext`."""
    context: MonitorContext = getattr(request.app.state, CONTEXT_KEY)
    return context


Context = Annotated[MonitorContext, Depends(get_context)]


def unauthorized(message: str) -> HTTPException:
    """A 401 with the ``WWW-Authenticate`` challenge."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        message,
        headers={"WWW-Authenticate": 'Bearer realm="EverTask Monitoring API"'},
    )


async def require_user(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The logged-in username (401 without a valid token, unless auth is disabled)."""
    if not context.options.enable_authentication:
        return "anonymous"
    if credentials is None:
        raise unauthorized("Authentication required: send 'Authorization: Bearer <token>'.")
    claims = context.tokens.validate(credentials.credentials)
    if claims is None:
        raise unauthorized("The token is invalid or expired; log in again.")
    return claims.username


User = Annotated[str, Depends(require_user)]


async def require_ready(context: Context) -> None:
    """503 while the host (or the standalone storage) is not running."""
    if not context.ready:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The EverTask host is not running; the monitoring API answers once it has started.",
        )


async def require_writable(context: Context) -> None:
    """409 for management actions in read-only mode."""
    if context.read_only:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "This monitor is read-only (standalone against a database, or read_only=True): "
            "cancel, retry, pause and resume need the monitoring API of a running host.",
        )
