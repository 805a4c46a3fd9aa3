"""Request-body size limits and error answers that never echo what the client sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AUTH_PREFIX",
    "BodyLimitMiddleware",
    "BodyTooLargeError",
    "relative_path",
    "safe_text",
    "validation_errors",
    "validation_response",
]

AUTH_PREFIX = "/api/auth/"
_MAX_PART = 100


def safe_text(text: object, limit: int = 1000) -> str:
    """``text`` as encodable UTF-8 (lone surrogates escaped), cut to ``limit`` characters."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Where and why a request is invalid: ``loc``, ``msg`` and ``type`` only, never the input."""
    out: list[dict[str, Any]] = []
    for error in errors:
        if not isinstance(error, dict):
            out.append({"loc": [], "msg": safe_text(error, 200), "type": "value_error"})
            continue
        loc = [
            part if isinstance(part, int) else safe_text(part, _MAX_PART)
            for part in error.get("loc", ())
        ]
        out.append(
            {
                "loc": loc,
                "msg": safe_text(error.get("msg", "Invalid value"), 300),
                "type": safe_text(error.get("type", "value_error"), _MAX_PART),
            }
        )
    return out


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 ``{"message", "detail": [{loc, msg, type}]}`` (FastAPI's shape without ``input``)."""
    detail = validation_errors(exc.errors())
    where = ", ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'request'}: {item['msg']}"
        for item in detail[:3]
    )
    return JSONResponse({"message": f"Invalid request ({where}).", "detail": detail}, 422)


class BodyTooLargeError(StarletteHTTPException):
    """A request body over the configured limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"The request body is larger than the limit of {limit} bytes for this route."
        )


def relative_path(scope: Scope) -> str:
    """The request path below the app's mount point."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


class BodyLimitMiddleware:
    """Refuses request bodies over a limit with 413, without reading them.

    A ``Content-Length`` over the limit is refused before the app runs; a body without
    one (chunked) is counted while it streams and refused as soon as it goes over.
    ``on_refused`` is called with the scope of every refused request.
    """

    def __init__(
        self,
        app: ASGIApp,
        auth_limit: int,
        limit: int,
        on_refused: Callable[[Scope], None] | None = None,
    ) -> None:
        self.app = app
        self.auth_limit = auth_limit
        self.limit = limit
        self.on_refused = on_refused

    def limit_of(self, scope: Scope) -> int:
        """The limit for this request's route."""
        return self.auth_limit if relative_path(scope).startswith(AUTH_PREFIX) else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, BodyTooLargeError(limit))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if self.on_refused is not None:
                        self.on_refused(scope)
                    raise BodyTooLargeError(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLargeError as error:  # read outside FastAPI's body handling
            if started:
                raise
            await _answer(send, error)

    async def _refuse(self, scope: Scope, send: Send, error: BodyTooLargeError) -> None:
        if self.on_refused is not None:
            self.on_refused(scope)
        await _answer(send, error)


async def _answer(send: Send, error: StarletteHTTPException) -> None:
    body = json.dumps({"message": error.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
