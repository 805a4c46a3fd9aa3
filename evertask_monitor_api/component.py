"""``add_monitoring_api`` (builder extension), the host component, and mounting helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypedDict, TypeVar, Unpack

from fastapi import FastAPI

from evertask import HostState
from evertask.host import EverTaskHost
from evertask.storage.protocol import TaskStorage
from evertask_abstractions import ConfigurationError

from .app import build_app, create_storage_app
from .auth import Credentials
from .context import MonitorContext
from .options import MonitoringOptions

__all__ = [
    "MonitoringComponent",
    "MonitoringSettings",
    "add_monitoring_api",
    "create_monitoring_app",
    "monitoring_of",
    "mount_monitoring",
]

B = TypeVar("B")

Configure = Callable[[MonitoringOptions], object]


class MonitoringSettings(TypedDict, total=False):
    """The :class:`MonitoringOptions` fields ``add_monitoring_api`` accepts by keyword (the
    defaults are the fields' defaults)."""

    base_path: str
    enable_ui: bool
    enable_authentication: bool
    enable_swagger: bool
    read_only: bool
    username: str | None
    password: str | None
    jwt_secret: str | None
    jwt_issuer: str
    jwt_audience: str
    token_lifetime: timedelta
    cors_origins: list[str]
    allowed_ips: list[str]
    trusted_proxies: list[str]
    event_debounce_ms: int
    websocket_buffer_size: int
    allow_execution_logs_in_events: bool
    max_failed_logins: int
    failed_login_window: timedelta
    max_auth_body_bytes: int
    max_body_bytes: int
    docs_url: str | None


def _options(configure: Configure | None, values: dict[str, Any]) -> MonitoringOptions:
    options = MonitoringOptions().update(**values)
    if configure is not None:
        configure(options)
    return options.validate()


class MonitoringComponent:
    """The monitoring API of one host: ``host.monitoring`` once built.

    ``app`` is the ASGI app to mount at ``options.base_path`` (or use :meth:`mount`);
    ``credentials`` is the dashboard account (print it, e.g. in a demo).
    """

    def __init__(self, options: MonitoringOptions) -> None:
        self.options = options.validate()
        self._context: MonitorContext | None = None
        self._app: FastAPI | None = None

    def bind(self, host: EverTaskHost) -> None:
        """Attach to a built host (called by the builder): creates the app."""
        storage = host.storage
        if storage is None:
            raise ConfigurationError(
                "The monitoring API reads tasks from a storage: add one, e.g. "
                "add_sqlite_storage('evertask.db') or add_memory_storage()."
            )
        self._context = MonitorContext(self.options, storage, host)
        self._app = build_app(self._context)
        host.publish_dispatch_events()
        host.monitoring = self

    @property
    def context(self) -> MonitorContext:
        """The shared state of the app."""
        if self._context is None:
            raise RuntimeError("The monitoring component is not bound to a host yet; build it.")
        return self._context

    @property
    def app(self) -> FastAPI:
        """The monitoring ASGI app (mount it at ``options.base_path``)."""
        if self._app is None:
            raise RuntimeError("The monitoring component is not bound to a host yet; build it.")
        return self._app

    @property
    def credentials(self) -> Credentials:
        """The dashboard account (generated for this process when none is configured)."""
        return self.context.credentials

    @property
    def url_path(self) -> str:
        """Where the dashboard is served (``options.base_path``)."""
        return self.options.base_path

    def mount(self, app: Any) -> FastAPI:
        """Mount the monitoring app on a FastAPI/Starlette ``app`` at ``options.base_path``."""
        app.mount(self.options.base_path, self.app, name="evertask-monitoring")
        return self.app

    async def start(self, host: EverTaskHost) -> None:
        """Log where the dashboard is and the credentials/security warnings (once)."""
        self.context.announce()

    async def stop(self) -> None:
        """Close the live-event WebSockets (before the engine stops)."""
        self.context.closing.set()


def add_monitoring_api(
    builder: B, configure: Configure | None = None, **options: Unpack[MonitoringSettings]
) -> B:
    """Add the monitoring REST API, live WebSocket and dashboard to an EverTask builder.

    ``configure`` receives :class:`MonitoringOptions`; keyword arguments set its fields by
    name (:class:`MonitoringSettings`), before ``configure`` runs. After ``build()``, mount
    ``host.monitoring.app`` at ``options.base_path`` (or call :func:`mount_monitoring`).
    """
    component = MonitoringComponent(_options(configure, dict(options)))
    builder.add_component(component)  # type: ignore[attr-defined]
    builder.on_build(component.bind)  # type: ignore[attr-defined]
    return builder


def monitoring_of(host: EverTaskHost) -> MonitoringComponent:
    """``host.monitoring`` with its type (raises if ``add_monitoring_api`` was not called)."""
    component = getattr(host, "monitoring", None)
    if not isinstance(component, MonitoringComponent):
        raise ConfigurationError(
            "This host has no monitoring API; call add_monitoring_api() on its builder."
        )
    return component


def create_monitoring_app(
    target: EverTaskHost | TaskStorage,
    options: MonitoringOptions | None = None,
    **values: Any,
) -> FastAPI:
    """The monitoring app of a host (full) or of a storage (read-only).

    For a host built with ``add_monitoring_api`` and no new options, this is
    ``host.monitoring.app``. A storage-only app opens the storage with its lifespan
    unless it is already open.
    """
    if isinstance(target, EverTaskHost):
        existing = getattr(target, "monitoring", None)
        if isinstance(existing, MonitoringComponent) and options is None and not values:
            return existing.app
        component = MonitoringComponent(_options(None, values) if options is None else options)
        component.bind(target)
        if target.state is HostState.CREATED:
            target.components.append(component)
        else:
            component.context.announce()
        return component.app
    opts = _options(None, values) if options is None else options
    opts.read_only = True
    return create_storage_app(MonitorContext(opts, target))


def mount_monitoring(
    app: Any, host: EverTaskHost, options: MonitoringOptions | None = None, **values: Any
) -> FastAPI:
    """Mount the host's monitoring app on ``app`` at the base path; returns it."""
    monitoring = create_monitoring_app(host, options, **values)
    context: MonitorContext = monitoring.state.evertask_monitor
    app.mount(context.options.base_path, monitoring, name="evertask-monitoring")
    return monitoring
