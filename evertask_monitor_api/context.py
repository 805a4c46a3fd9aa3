"""``MonitorContext``: what every route needs (storage, host, security services, queries)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from evertask.clock import utc_now
from evertask.host import EverTaskHost
from evertask.options import QueueConfiguration
from evertask.storage.protocol import TaskStorage

from .access import ClientResolver
from .auth import Credentials, TokenService, resolve_credentials, resolve_secret
from .options import ENV_JWT_SECRET, ENV_PASSWORD, ENV_USERNAME, MonitoringOptions
from .queries import MonitorQueries
from .throttle import LoginThrottle

__all__ = ["MonitorContext"]

log = logging.getLogger("evertask.monitor")


class MonitorContext:
    """Shared state of one monitoring app.

    With a ``host`` the app is complete (live events, management actions, queue
    configuration); with only a ``storage`` it is read-only (the standalone mode).
    """

    def __init__(
        self,
        options: MonitoringOptions,
        storage: TaskStorage,
        host: EverTaskHost | None = None,
    ) -> None:
        self.options = options.validate()
        self.storage = storage
        self.host = host
        self.read_only = options.read_only or host is None
        secret, self.secret_generated = resolve_secret(options)
        self.tokens = TokenService(
            secret, options.jwt_issuer, options.jwt_audience, options.token_lifetime
        )
        self.throttle = LoginThrottle(
            options.max_failed_logins, options.failed_login_window.total_seconds()
        )
        self.resolver = ClientResolver(options.proxy_networks())
        self.queries = MonitorQueries(storage, self.now)
        self.closing = asyncio.Event()
        self._credentials: Credentials | None = None
        self._announced = False

    # -- state ---------------------------------------------------------------------------
    @property
    def credentials(self) -> Credentials:
        """The dashboard account (a generated password is made on first use)."""
        if self._credentials is None:
            self._credentials = resolve_credentials(self.options)
        return self._credentials

    @property
    def ready(self) -> bool:
        """Whether the storage can be queried now."""
        if self.host is not None:
            return self.host.is_running
        return bool(getattr(self.storage, "is_open", True))

    @property
    def live_events(self) -> bool:
        """Whether the WebSocket streams events (only with a running host)."""
        return self.host is not None

    def now(self) -> datetime:
        """The host's clock (or the system clock in standalone mode)."""
        if self.host is not None:
            return self.host.clock.now()
        return utc_now()

    def queue_names(self) -> list[str]:
        """Queues configured in this process (empty in standalone mode)."""
        if self.host is None:
            return []
        return self.host.queue_names

    def queue_config(self, name: str) -> QueueConfiguration | None:
        """A configured queue's settings, or ``None``."""
        if self.host is None:
            return None
        if name not in self.host.queue_names:
            return None
        return self.host.queue_config(name)

    def queued_in_memory(self, name: str) -> int | None:
        """Runs waiting in a queue's in-memory buffer now."""
        if self.host is None:
            return None
        if name not in self.host.queue_names:
            return None
        return self.host.queue_length(name)

    # -- start-up messages ---------------------------------------------------------------
    def announce(self) -> None:
        """Log, once, where the dashboard is and the security warnings that apply."""
        if self._announced:
            return
        self._announced = True
        opts = self.options
        if not opts.enable_authentication:
            log.warning(
                "\n%s\nEverTask monitoring: AUTHENTICATION IS DISABLED. Anyone who can reach "
                "%s can read task payloads%s. Enable it unless an authenticating proxy "
                "guards this path.\n%s",
                "!" * 78,
                opts.base_path,
                "" if self.read_only else " and cancel, retry or pause tasks",
                "!" * 78,
            )
        else:
            creds = self.credentials
            if creds.generated:
                log.warning(
                    "EverTask monitoring: no credentials configured (options or %s/%s); "
                    "generated for this process: username %r, password %r",
                    ENV_USERNAME,
                    ENV_PASSWORD,
                    creds.username,
                    creds.password,
                )
            if self.secret_generated:
                log.warning(
                    "EverTask monitoring: no token secret configured (%s); tokens are signed "
                    "with a per-process key, so they end with this process and are not "
                    "accepted by other instances.",
                    ENV_JWT_SECRET,
                )
        log.info("EverTask monitoring at %s (API %s)", opts.base_path, opts.api_path)
