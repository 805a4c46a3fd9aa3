"""``MonitoringOptions``: paths, access control, credentials, tokens and live-event settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Self

from evertask_abstractions import ConfigurationError

__all__ = ["ENV_JWT_SECRET", "ENV_PASSWORD", "ENV_USERNAME", "MonitoringOptions", "Network"]

ENV_USERNAME = "EVERTASK_MONITOR_USERNAME"
ENV_PASSWORD = "EVERTASK_MONITOR_PASSWORD"
ENV_JWT_SECRET = "EVERTASK_MONITOR_JWT_SECRET"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MIN_SECRET_LENGTH = 32
DEFAULT_AUTH_BODY_LIMIT = 16 * 1024
DEFAULT_BODY_LIMIT = 1024 * 1024


def _network(text: str, what: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as error:
        raise ConfigurationError(
            f"{what}: {text!r} is not an IP address or CIDR network ({error})."
        ) from None


@dataclass
class MonitoringOptions:
    """Settings of the monitoring API and dashboard (``add_monitoring_api(configure)``).

    Paths: the dashboard is served at ``base_path``, the REST API under
    ``base_path + "/api"`` and the live-event WebSocket at ``base_path + "/ws"``.

    Credentials come from ``username``/``password`` or from the environment variables
    ``EVERTASK_MONITOR_USERNAME``/``EVERTASK_MONITOR_PASSWORD``; when neither is set a
    strong password is generated when the host starts and logged once. The token secret
    comes from ``jwt_secret`` or ``EVERTASK_MONITOR_JWT_SECRET`` (else one is generated
    per process: tokens do not survive a restart).
    """

    base_path: str = "/evertask-monitoring"
    enable_ui: bool = True
    enable_authentication: bool = True
    enable_swagger: bool = False
    read_only: bool = False
    username: str | None = None
    password: str | None = None
    jwt_secret: str | None = None
    jwt_issuer: str = "evertask-monitor"
    jwt_audience: str = "evertask-monitor"
    token_lifetime: timedelta = timedelta(hours=8)
    cors_origins: list[str] = field(default_factory=list)
    allowed_ips: list[str] = field(default_factory=list)
    trusted_proxies: list[str] = field(default_factory=list)
    event_debounce_ms: int = 1000
    websocket_buffer_size: int = 1000
    allow_execution_logs_in_events: bool = True
    max_failed_logins: int = 5
    failed_login_window: timedelta = timedelta(minutes=1)
    max_auth_body_bytes: int = DEFAULT_AUTH_BODY_LIMIT
    max_body_bytes: int = DEFAULT_BODY_LIMIT
    docs_url: str | None = None

    # -- derived paths -----------------------------------------------------------------
    @property
    def api_path(self) -> str:
        """Where the REST API lives (``{base_path}/api``)."""
        return f"{self.base_path}/api"

    @property
    def websocket_path(self) -> str:
        """Where the live-event WebSocket lives (``{base_path}/ws``)."""
        return f"{self.base_path}/ws"

    # -- fluent setters ----------------------------------------------------------------
    def set_base_path(self, path: str) -> Self:
        """Mount point of the dashboard and API (default ``/evertask-monitoring``)."""
        self.base_path = path
        return self

    def set_credentials(self, username: str, password: str) -> Self:
        """The one account allowed to log in."""
        self.username, self.password = username, password
        return self

    def set_jwt_secret(self, secret: str) -> Self:
        """HS256 signing secret (at least 32 characters); share it between instances."""
        self.jwt_secret = secret
        return self

    def set_token_lifetime(self, lifetime: timedelta | float) -> Self:
        """How long a login token stays valid (default 8 hours)."""
        self.token_lifetime = (
            lifetime if isinstance(lifetime, timedelta) else timedelta(seconds=lifetime)
        )
        return self

    def allow_cors_origins(self, *origins: str) -> Self:
        """Browser origins allowed to call the API cross-site (none by default)."""
        self.cors_origins = [*self.cors_origins, *origins]
        return self

    def allow_ips(self, *networks: str) -> Self:
        """Only these addresses/CIDR networks may reach the dashboard, API and WebSocket."""
        self.allowed_ips = [*self.allowed_ips, *networks]
        return self

    def trust_proxies(self, *networks: str) -> Self:
        """Reverse proxies whose ``X-Forwarded-For`` header names the real client."""
        self.trusted_proxies = [*self.trusted_proxies, *networks]
        return self

    def disable_authentication(self) -> Self:
        """Serve everything without login (a loud warning is logged at start)."""
        self.enable_authentication = False
        return self

    def disable_ui(self) -> Self:
        """Serve only the API and WebSocket, not the dashboard."""
        self.enable_ui = False
        return self

    def set_read_only(self, read_only: bool = True) -> Self:
        """Refuse management actions (cancel, retry, pause, resume)."""
        self.read_only = read_only
        return self

    def set_event_debounce(self, milliseconds: int) -> Self:
        """Dashboard refresh throttle when live events arrive (default 1000 ms)."""
        self.event_debounce_ms = milliseconds
        return self

    def set_websocket_buffer_size(self, size: int) -> Self:
        """Events buffered per WebSocket client; a slower client loses (and is told) the rest."""
        self.websocket_buffer_size = size
        return self

    def set_login_throttle(self, max_failures: int, window: timedelta | float) -> Self:
        """Failed logins allowed per client and per user within ``window`` (default 5/min)."""
        self.max_failed_logins = max_failures
        self.failed_login_window = (
            window if isinstance(window, timedelta) else timedelta(seconds=window)
        )
        return self

    def set_body_limits(self, *, auth: int | None = None, other: int | None = None) -> Self:
        """Largest request body in bytes for ``/api/auth/*`` (default 16 KiB) and for every
        other route (default 1 MiB); a larger body is refused with 413 before it is read."""
        if auth is not None:
            self.max_auth_body_bytes = auth
        if other is not None:
            self.max_body_bytes = other
        return self

    def set_docs_url(self, url: str | None) -> Self:
        """Where this documentation is published (its root, ``http(s)://``): the
        dashboard's help links (e.g. how to declare a rate limit) point there."""
        self.docs_url = url
        return self

    def update(self, **values: Any) -> Self:
        """Set options by name (``add_monitoring_api(base_path=...)``)."""
        for name, value in values.items():
            if name.startswith("_") or not hasattr(self, name) or callable(getattr(self, name)):
                raise ConfigurationError(f"Unknown monitoring option {name!r}.")
            if isinstance(getattr(type(self), name, None), property):
                raise ConfigurationError(f"Monitoring option {name!r} is derived, not settable.")
            setattr(self, name, value)
        return self

    # -- validation --------------------------------------------------------------------
    def validate(self) -> Self:
        """Normalise and check every option; raise ``ConfigurationError`` on a bad one."""
        path = self.base_path.strip()
        if not path.startswith("/") or "//" in path or " " in path:
            raise ConfigurationError(
                f"base_path must be an absolute URL path like '/evertask-monitoring', "
                f"got {self.base_path!r}."
            )
        self.base_path = path.rstrip("/")
        if self.token_lifetime <= timedelta(0):
            raise ConfigurationError("token_lifetime must be positive.")
        if self.failed_login_window <= timedelta(0) or self.max_failed_logins < 1:
            raise ConfigurationError(
                "The login throttle needs max_failed_logins >= 1 and a positive window."
            )
        if self.websocket_buffer_size < 1:
            raise ConfigurationError("websocket_buffer_size must be at least 1.")
        if self.docs_url is not None:
            url = self.docs_url.strip()
            if not url.startswith(("http://", "https://")) or " " in url:
                raise ConfigurationError(f"docs_url must be an http(s) URL, got {self.docs_url!r}.")
            self.docs_url = url if url.endswith("/") else f"{url}/"
        if self.event_debounce_ms < 0:
            raise ConfigurationError("event_debounce_ms must not be negative.")
        for name in ("max_auth_body_bytes", "max_body_bytes"):
            limit = getattr(self, name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigurationError(
                    f"{name} must be a positive number of bytes (set_body_limits), got {limit!r}."
                )
        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"jwt_secret must be at least {MIN_SECRET_LENGTH} characters; generate one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        if self.password is not None and not self.password:
            raise ConfigurationError("The monitoring password must not be empty.")
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"CORS origin {origin!r} is not allowed: list exact origins like "
                    "'https://admin.example.com' (a wildcard would expose the API to any site)."
                )
        self.allowed_networks()
        self.proxy_networks()
        return self

    def allowed_networks(self) -> list[Network]:
        """The parsed IP allow-list (empty: every address)."""
        return [_network(n, "allowed_ips") for n in self.allowed_ips]

    def proxy_networks(self) -> list[Network]:
        """The parsed trusted-proxy list."""
        return [_network(n, "trusted_proxies") for n in self.trusted_proxies]
