"""Credentials (configured, from the environment, or generated) and signed login tokens."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from evertask_abstractions import ConfigurationError

from .options import ENV_JWT_SECRET, ENV_PASSWORD, ENV_USERNAME, MonitoringOptions

__all__ = ["Credentials", "TokenClaims", "TokenService", "resolve_credentials", "resolve_secret"]

log = logging.getLogger("evertask.monitor")

DEFAULT_USERNAME = "admin"
_ALGORITHM = "HS256"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Credentials:
    """The one account of the dashboard. ``generated`` is true for a per-process password."""

    username: str
    password: str
    generated: bool = False
    source: str = "options"

    def check(self, username: str, password: str) -> bool:
        """Constant-time comparison of both fields (no early exit, no length leak)."""
        user_ok = hmac.compare_digest(_digest(username), _digest(self.username))
        pass_ok = hmac.compare_digest(_digest(password), _digest(self.password))
        return user_ok & pass_ok

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', source={self.source!r})"


def resolve_credentials(
    options: MonitoringOptions, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Options first, then ``EVERTASK_MONITOR_USERNAME``/``_PASSWORD``, else a generated password.

    There is no built-in password: without one, a random 24-character password is made.
    """
    env = os.environ if environ is None else environ
    username = options.username or env.get(ENV_USERNAME) or None
    password = options.password
    source = "options"
    if password is None and env.get(ENV_PASSWORD):
        password, source = env[ENV_PASSWORD], "environment"
    if password is None:
        if options.username is not None:
            raise ConfigurationError(
                "A monitoring username was configured without a password; set both, set "
                f"{ENV_PASSWORD}, or set neither to get a generated password."
            )
        return Credentials(
            username or DEFAULT_USERNAME, secrets.token_urlsafe(18), True, "generated"
        )
    return Credentials(username or DEFAULT_USERNAME, password, False, source)


def resolve_secret(
    options: MonitoringOptions, environ: Mapping[str, str] | None = None
) -> tuple[str, bool]:
    """The token-signing secret and whether it was generated for this process."""
    env = os.environ if environ is None else environ
    secret = options.jwt_secret or env.get(ENV_JWT_SECRET) or None
    if secret is None:
        return secrets.token_urlsafe(48), True
    if len(secret) < 32:
        raise ConfigurationError(
            f"{ENV_JWT_SECRET} must be at least 32 characters; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
    return secret, False


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says."""

    username: str
    expires_at: datetime
    token_id: str


class TokenService:
    """Issues and checks HS256 tokens (``sub``, ``iat``, ``exp``, ``jti``, ``iss``, ``aud``)."""

    def __init__(self, secret: str, issuer: str, audience: str, lifetime: timedelta) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime

    def issue(self, username: str, now: datetime | None = None) -> tuple[str, datetime]:
        """A new token for ``username`` and its expiry (whole seconds, as JWT times are:
        the token lives at least the configured lifetime, never less)."""
        issued = now or datetime.now(UTC)
        at = math.floor(issued.timestamp())
        exp = math.ceil((issued + self._lifetime).timestamp())
        expires = datetime.fromtimestamp(exp, UTC)
        payload = {
            "sub": username,
            "iat": at,
            "nbf": at,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(payload, self._secret, algorithm=_ALGORITHM), expires

    def validate(self, token: str) -> TokenClaims | None:
        """The claims of a valid token; ``None`` if it is malformed, tampered or expired."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub:
            return None
        return TokenClaims(sub, datetime.fromtimestamp(payload["exp"], UTC), str(payload["jti"]))
