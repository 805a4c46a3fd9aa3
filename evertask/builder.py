"""``add_evertask(container, configure)`` and the fluent service builder."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, Literal, Self, Unpack

from dependency_injector import providers

from evertask_abstractions import ConfigurationError, QueueFullBehavior, TaskDispatcher

from .compensation import CompensateWorkflowHandler
from .di import HandlerFactoryBuilder
from .engine import Engine
from .host import EverTaskHost, HostComponent
from .logcapture import make_log_capture
from .options import DEFAULT_QUEUE, RECURRING_QUEUE, EverTaskOptions, QueueConfiguration
from .processes.pool import ProcessPool
from .queues import QueueManager
from .registry import HandlerRegistry
from .storage.memory import MemoryTaskStorage
from .storage.protocol import TaskStorage

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from evertask_monitor_api import MonitoringOptions, MonitoringSettings
    from evertask_storage_efcore_like import RetentionPolicy

__all__ = ["EverTaskServiceBuilder", "add_evertask"]

log = logging.getLogger("evertask")

StorageFactory = Callable[[EverTaskOptions], TaskStorage]
HostHook = Callable[[EverTaskHost], None]

_DISTRIBUTIONS = {"jwt": "pyjwt", "opentelemetry": "opentelemetry-api"}
# Each plug-in package is a distribution of its own, installed by an extra of evertask.
_PLUGIN_DISTRIBUTIONS = {
    "evertask_storage_sqlite": "evertask-storage-sqlite",
    "evertask_storage_postgres": "evertask-storage-postgres",
    "evertask_storage_mysql": "evertask-storage-mysql",
    "evertask_storage_mssql": "evertask-storage-sqlserver",
    "evertask_logging": "evertask-logging",
    "evertask_monitor_api": "evertask-monitor-api",
}


def _missing_extra(error: ImportError, method: str, extra: str) -> Exception:
    """The error for a plug-in method whose optional dependency is not installed: the
    plug-in's distribution or a third-party package (a missing module inside EverTask's own
    packages is a broken installation: its own error is kept)."""
    name = error.name or ""
    module = name.partition(".")[0]
    if name in _PLUGIN_DISTRIBUTIONS:
        package = _PLUGIN_DISTRIBUTIONS[name]
    elif not module or module.startswith("evertask"):
        return error
    else:
        package = _DISTRIBUTIONS.get(module, module)
    return ConfigurationError(
        f"{method}() needs the optional package {package!r} ({error}); "
        f'install it with pip install "evertask[{extra}]"'
    )


def add_evertask(
    container: Any = None,
    configure: Callable[[EverTaskOptions], object] | None = None,
) -> EverTaskServiceBuilder:
    """Start configuring EverTask for a dependency-injector container.

    ``configure`` receives :class:`EverTaskOptions` (register handlers, set options).
    Returns the builder: add queues and storage, then ``build()`` the host.
    """
    options = EverTaskOptions()
    if configure is not None:
        configure(options)
    return EverTaskServiceBuilder(container, options)


class EverTaskServiceBuilder:
    """Fluent configuration of queues, storage and plug-ins; ``build()`` makes the host."""

    def __init__(self, container: Any, options: EverTaskOptions) -> None:
        self.container = container
        self.options = options
        self._queues: dict[str, QueueConfiguration] = {}
        self._default_configured: list[Callable[[QueueConfiguration], object]] = []
        self._recurring_configured: list[Callable[[QueueConfiguration], object]] = []
        self._storage_factory: StorageFactory | None = None
        self._host_hooks: list[HostHook] = []
        self._components: list[HostComponent] = []

    # -- queues ----------------------------------------------------------------------------
    def configure_default_queue(self, configure: Callable[[QueueConfiguration], object]) -> Self:
        """Adjust the "default" queue (global parallelism and capacity, WAIT when full)."""
        self._default_configured.append(configure)
        return self

    def configure_recurring_queue(self, configure: Callable[[QueueConfiguration], object]) -> Self:
        """Adjust the "recurring" queue (a copy of the default queue unless configured)."""
        self._recurring_configured.append(configure)
        return self

    def add_queue(
        self, name: str, configure: Callable[[QueueConfiguration], object] | None = None
    ) -> Self:
        """Add an isolated queue (defaults: 1 consumer, capacity 500, FALLBACK_TO_DEFAULT)."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("A queue needs a non-empty name.")
        if name in (DEFAULT_QUEUE, RECURRING_QUEUE):
            raise ConfigurationError(
                f"{name!r} is built in; use configure_default_queue() / "
                "configure_recurring_queue() to change it."
            )
        config = QueueConfiguration(name)
        if configure is not None:
            configure(config)
        self._queues[name] = config
        return self

    # -- storage ---------------------------------------------------------------------------
    def use_storage(self, storage: TaskStorage | StorageFactory) -> Self:
        """Use any object implementing :class:`~evertask.storage.TaskStorage` (or a factory)."""
        if self._storage_factory is not None:
            raise ConfigurationError("A storage is already configured; configure exactly one.")
        if isinstance(storage, TaskStorage):
            instance = storage
            self._storage_factory = lambda _options: instance
        elif callable(storage):
            self._storage_factory = storage
        else:
            raise ConfigurationError(f"{storage!r} is not a TaskStorage or a factory of one.")
        return self

    def add_memory_storage(self) -> Self:
        """Keep rows in process memory (dev and tests; nothing survives the process)."""
        return self.use_storage(lambda options: MemoryTaskStorage(options.clock.now))

    # Each plug-in method imports its package when called: the packages stay optional, and a
    # missing dependency names the extra to install (see _missing_extra).
    def add_sqlite_storage(
        self,
        path: str | os.PathLike[str] = "evertask.db",
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        readers: int = 2,
        auto_apply_migrations: bool = True,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        inline_max_ops: int = 64,
        retention: RetentionPolicy | None = None,
        retention_interval: timedelta = timedelta(hours=24),
    ) -> Self:
        """Embedded SQLite storage in the file ``path`` (``pip install "evertask[sqlite]"``).

        The options are :class:`~evertask_storage_sqlite.SqliteTaskStorage`'s; ``retention``
        applies a :class:`~evertask_storage_efcore_like.RetentionPolicy` every
        ``retention_interval``.
        """
        try:
            from evertask_storage_sqlite import add_sqlite_storage
        except ImportError as error:
            raise _missing_extra(error, "add_sqlite_storage", "sqlite") from error
        return add_sqlite_storage(
            self,
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            readers=readers,
            auto_apply_migrations=auto_apply_migrations,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            inline_max_ops=inline_max_ops,
            retention=retention,
            retention_interval=retention_interval,
        )

    def add_postgres_storage(
        self,
        url: str | URL,
        schema: str | None = "evertask",
        *,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
        auto_apply_migrations: bool = True,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 2,
        engine_options: Mapping[str, Any] | None = None,
        retention: RetentionPolicy | None = None,
        retention_interval: timedelta = timedelta(hours=24),
    ) -> Self:
        """PostgreSQL storage at ``url`` (``pip install "evertask[postgres]"``).

        The options are :class:`~evertask_storage_postgres.PostgresTaskStorage`'s;
        ``retention`` as in :meth:`add_sqlite_storage`.
        """
        try:
            from evertask_storage_postgres import add_postgres_storage
        except ImportError as error:
            raise _missing_extra(error, "add_postgres_storage", "postgres") from error
        return add_postgres_storage(
            self,
            url,
            schema,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            auto_apply_migrations=auto_apply_migrations,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=engine_options,
            retention=retention,
            retention_interval=retention_interval,
        )

    def add_sqlserver_storage(
        self,
        connection_string: str | URL,
        schema: str | None = "EverTask",
        *,
        pool_size: int = 5,
        connect_timeout: float = 15.0,
        auto_apply_migrations: bool = True,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 1,
        engine_options: Mapping[str, Any] | None = None,
        retention: RetentionPolicy | None = None,
        retention_interval: timedelta = timedelta(hours=24),
    ) -> Self:
        """SQL Server / Azure SQL storage (``pip install "evertask[sqlserver]"``).

        The options are :class:`~evertask_storage_mssql.SqlServerTaskStorage`'s (empty
        ``schema``: ``dbo``); ``retention`` as in :meth:`add_sqlite_storage`.
        """
        try:
            from evertask_storage_mssql import add_sqlserver_storage
        except ImportError as error:
            raise _missing_extra(error, "add_sqlserver_storage", "sqlserver") from error
        return add_sqlserver_storage(
            self,
            connection_string,
            schema,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            auto_apply_migrations=auto_apply_migrations,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=engine_options,
            retention=retention,
            retention_interval=retention_interval,
        )

    def add_mysql_storage(
        self,
        url: str | URL,
        schema: str | None = None,
        *,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
        pool_recycle: float = 3600.0,
        auto_apply_migrations: bool = True,
        max_batch_size: int = 512,
        max_batch_delay: float = 0.0005,
        writer_connections: int = 1,
        engine_options: Mapping[str, Any] | None = None,
        retention: RetentionPolicy | None = None,
        retention_interval: timedelta = timedelta(hours=24),
    ) -> Self:
        """MySQL / MariaDB storage at ``url`` (``pip install "evertask[mysql]"``).

        The options are :class:`~evertask_storage_mysql.MySqlTaskStorage`'s (the database
        comes from the URL; a ``schema`` is refused); ``retention`` as in
        :meth:`add_sqlite_storage`.
        """
        try:
            from evertask_storage_mysql import add_mysql_storage
        except ImportError as error:
            raise _missing_extra(error, "add_mysql_storage", "mysql") from error
        return add_mysql_storage(
            self,
            url,
            schema,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pool_recycle=pool_recycle,
            auto_apply_migrations=auto_apply_migrations,
            max_batch_size=max_batch_size,
            max_batch_delay=max_batch_delay,
            writer_connections=writer_connections,
            engine_options=engine_options,
            retention=retention,
            retention_interval=retention_interval,
        )

    def add_opentelemetry(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        tracing: bool = True,
        metrics: bool = True,
    ) -> Self:
        """OpenTelemetry spans and metrics (the SDK: ``pip install "evertask[otel]"``).

        See :func:`evertask.telemetry.add_opentelemetry` for the parameters.
        """
        try:
            from .telemetry import add_opentelemetry
        except ImportError as error:
            raise _missing_extra(error, "add_opentelemetry", "otel") from error
        return add_opentelemetry(
            self, tracer_provider, meter_provider, tracing=tracing, metrics=metrics
        )

    def add_structured_logging(
        self,
        *,
        format: Literal["json", "console"] = "json",
        stream: IO[str] | None = None,
        level: int = logging.INFO,
        loggers: Iterable[str] = (),
        propagate: bool = False,
    ) -> Self:
        """JSON or console structured logs with task context.

        See :func:`evertask_logging.add_structured_logging` for the parameters.
        """
        try:
            from evertask_logging import add_structured_logging
        except ImportError as error:
            raise _missing_extra(error, "add_structured_logging", "logging") from error
        return add_structured_logging(
            self, format=format, stream=stream, level=level, loggers=loggers, propagate=propagate
        )

    def add_monitoring_api(
        self,
        configure: Callable[[MonitoringOptions], object] | None = None,
        **options: Unpack[MonitoringSettings],
    ) -> Self:
        """Monitoring REST API, live WebSocket and dashboard (``pip install "evertask[monitor]"``).

        ``configure`` receives the :class:`~evertask_monitor_api.MonitoringOptions`; keyword
        arguments set its fields by name (:class:`~evertask_monitor_api.MonitoringSettings`).
        """
        try:
            from evertask_monitor_api import add_monitoring_api
        except ImportError as error:
            raise _missing_extra(error, "add_monitoring_api", "monitor") from error
        return add_monitoring_api(self, configure, **options)

    # -- plug-ins --------------------------------------------------------------------------
    def add_component(self, component: HostComponent) -> Self:
        """Start ``component`` with the host and stop it before the engine stops."""
        self._components.append(component)
        return self

    def on_build(self, hook: HostHook) -> Self:
        """Call ``hook(host)`` when the host is built (plug-ins wire themselves here)."""
        self._host_hooks.append(hook)
        return self

    # -- build -----------------------------------------------------------------------------
    def _queue_configs(self) -> dict[str, QueueConfiguration]:
        opts = self.options
        default = QueueConfiguration(
            DEFAULT_QUEUE,
            max_degree_of_parallelism=opts.max_degree_of_parallelism,
            channel_capacity=opts.channel_capacity,
            queue_full_behavior=QueueFullBehavior.WAIT,
        )
        for configure in self._default_configured:
            configure(default)
        recurring = default.clone(RECURRING_QUEUE)
        for configure in self._recurring_configured:
            configure(recurring)
        return {DEFAULT_QUEUE: default, RECURRING_QUEUE: recurring, **self._queues}

    def build(self) -> EverTaskHost:
        """Discover handlers, check their dependencies and options, and create the host."""
        opts = self.options
        registry = HandlerRegistry()
        registry.scan(opts.handler_modules, opts.handler_classes)
        if not len(registry):
            raise ConfigurationError(
                "No task handlers were registered. Call register_tasks_from_module(module) or "
                "register_tasks_from_package(package) in add_evertask(container, configure)."
                + "".join(f"\n  skipped {reason}" for reason in registry.skipped)
            )
        storage = self._storage_factory(opts) if self._storage_factory is not None else None
        if storage is not None:  # EverTask's own task: a failed saga's compensations
            registry.add(CompensateWorkflowHandler)
        if storage is None and not opts.run_workers:
            raise ConfigurationError(
                "set_run_workers(False) makes a dispatch-only host, whose tasks worker hosts "
                "run from a shared database: add a SQL storage (e.g. add_postgres_storage) "
                "that the worker hosts use too."
            )
        queues = QueueManager(self._queue_configs())
        engine = Engine(opts, registry, queues, storage, make_log_capture(opts))
        host = EverTaskHost(engine, self.container)
        builtins: dict[type, Callable[[], Any]] = {
            type(host.dispatcher): lambda: host.dispatcher,
            EverTaskHost: lambda: host,
            ProcessPool: lambda: host.process_pool,
        }
        if storage is not None:
            builtins[type(storage)] = lambda: storage
        builtins[TaskDispatcher] = lambda: host.dispatcher
        if storage is not None:
            builtins[TaskStorage] = lambda: storage
        factories = HandlerFactoryBuilder(self.container, builtins)
        for descriptor in registry.descriptors():
            descriptor.factory = factories.build(descriptor.handler_class)
        if self.container is not None and hasattr(self.container, "set_provider"):
            self.container.set_provider("evertask_dispatcher", providers.Object(host.dispatcher))
            self.container.set_provider("evertask_host", providers.Object(host))
        if opts.max_degree_of_parallelism == 1:
            log.warning(
                "max_degree_of_parallelism is 1: the default queue runs one task at a time."
            )
        host.components.extend(self._components)
        for hook in self._host_hooks:
            hook(host)
        return host
