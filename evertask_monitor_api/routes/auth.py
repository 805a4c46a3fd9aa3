"""``/auth/login`` (throttled) and ``/auth/validate``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import Scope

from ..access import client_ip
from ..context import MonitorContext
from ..schemas import LoginRequest, LoginResponse, TokenValidationResponse, ValidateRequest
from .deps import AUTH_RESPONSES, Context, bearer, unauthorized

__all__ = ["count_invalid_login", "router", "too_many_logins"]

router = APIRouter(prefix="/auth", tags=["auth"])


def too_many_logins(wait: int) -> HTTPException:
    """The 429 of a throttled login, with ``Retry-After``."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"Too many failed logins; try again in {wait} s.",
        headers={"Retry-After": str(wait)},
    )


def count_invalid_login(context: MonitorContext, scope: Scope) -> int | None:
    """Count a login with an unusable body as a failure of the client's address.

    Returns the seconds to wait when the client is already throttled (answer 429), else
    ``None``. Nothing is counted when authentication is disabled.
    """
    if not context.options.enable_authentication:
        return None
    keys = (f"ip:{client_ip(scope)}",)
    wait = context.throttle.retry_after(keys)
    if wait is None:
        context.throttle.record_failure(keys)
    return wait


@router.post(
    "/login",
    response_model=LoginResponse,
    responses={
        401: AUTH_RESPONSES[401],
        403: AUTH_RESPONSES[403],
        413: {**AUTH_RESPONSES[401], "description": "The body is over max_auth_body_bytes"},
        429: {**AUTH_RESPONSES[401], "description": "Too many failed logins; see Retry-After"},
    },
)
async def login(body: LoginRequest, request: Request, context: Context) -> LoginResponse:
    """Exchange the dashboard credentials for a signed token.

    After ``max_failed_logins`` failures within the window from one client or for one
    username, attempts are refused with 429 and ``Retry-After`` until the window moves on.
    """
    if not context.options.enable_authentication:
        token, expires = context.tokens.issue("anonymous")
        return LoginResponse(token=token, expires_at=expires, username="anonymous")
    keys = (f"ip:{client_ip(request.scope)}", f"user:{body.username.casefold()}")
    wait = context.throttle.retry_after(keys)
    if wait is not None:
        raise too_many_logins(wait)
    creds = context.credentials
    if not creds.check(body.username, body.password):
        context.throttle.record_failure(keys)
        raise unauthorized("Invalid username or password.")
    context.throttle.reset(keys[:1])
    token, expires = context.tokens.issue(creds.username)
    return LoginResponse(token=token, expires_at=expires, username=creds.username)


@router.post(
    "/validate",
    response_model=TokenValidationResponse,
    responses={
        401: {**AUTH_RESPONSES[401], "description": "No token given"},
        403: AUTH_RESPONSES[403],
    },
)
async def validate(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    body: ValidateRequest | None = None,
) -> TokenValidationResponse:
    """Whether a token (in the body, else in the ``Authorization`` header) is valid."""
    token = body.token if body is not None and body.token else None
    if token is None and credentials is not None:
        token = credentials.credentials
    if token is None:
        raise unauthorized("Send a token in the body or the Authorization header.")
    claims = context.tokens.validate(token)
    if claims is None:
        return TokenValidationResponse(is_valid=False)
    return TokenValidationResponse(
        is_valid=True, username=claims.username, expires_at=claims.expires_at
    )
