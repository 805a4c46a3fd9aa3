"""``add_evertask(container, configure)`` and the fluent service builder."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any, Self

from dependency_injector import providers

from evertask_abstractions import ConfigurationError, QueueFullBehavior, TaskDispatcher

from .di import HandlerFactoryBuilder
from .engine import Engine
from .host import EverTaskHost, HostComponent
from .logcapture import make_log_capture
from .options import DEFAULT_QUEUE, RECURRING_QUEUE, EverTaskOptions, QueueConfiguration
from .queues import QueueManager
from .registry import HandlerRegistry
from .storage.memory import MemoryTaskStorage
from .storage.protocol import TaskStorage

__all__ = ["EverTaskServiceBuilder", "add_evertask"]

log = logging.getLogger("evertask")

EXTENSION_GROUP = "evertask.builder_extensions"

StorageFactory = Callable[[EverTaskOptions], TaskStorage]
HostHook = Callable[[EverTaskHost], None]


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

    def add_sqlite_storage(self, path: str = "evertask.db", **options: Any) -> Self:
        """Embedded SQLite storage (needs ``pip install evertask[sqlite]``)."""
        return self._extension("add_sqlite_storage", "sqlite")(self, path, **options)  # type: ignore[no-any-return]

    def add_postgres_storage(self, url: str, **options: Any) -> Self:
        """PostgreSQL storage (needs ``pip install evertask[postgres]``)."""
        return self._extension("add_postgres_storage", "postgres")(self, url, **options)  # type: ignore[no-any-return]

    def add_sqlserver_storage(self, connection_string: str, **options: Any) -> Self:
        """SQL Server storage (needs ``pip install evertask[mssql]``)."""
        return self._extension("add_sqlserver_storage", "mssql")(self, connection_string, **options)  # type: ignore[no-any-return]

    def add_mysql_storage(self, url: str, **options: Any) -> Self:
        """MySQL / MariaDB storage (needs ``pip install evertask[mysql]``)."""
        return self._extension("add_mysql_storage", "mysql")(self, url, **options)  # type: ignore[no-any-return]

    def add_opentelemetry(self, **options: Any) -> Self:
        """OpenTelemetry spans and metrics (needs ``pip install evertask[otel]``)."""
        return self._extension("add_opentelemetry", "otel")(self, **options)  # type: ignore[no-any-return]

    def add_structured_logging(self, **options: Any) -> Self:
        """JSON or console structured logs with task context (``pip install evertask[logging]``)."""
        return self._extension("add_structured_logging", "logging")(self, **options)  # type: ignore[no-any-return]

    def add_monitoring_api(self, configure: Any = None, **options: Any) -> Self:
        """Monitoring REST API, live WebSocket and dashboard (``pip install evertask[monitor]``)."""
        return self._extension("add_monitoring_api", "monitor")(self, configure, **options)  # type: ignore[no-any-return]

    # -- plug-ins --------------------------------------------------------------------------
    def add_component(self, component: HostComponent) -> Self:
        """Start ``component`` with the host and stop it before the engine stops."""
        self._components.append(component)
        return self

    def on_build(self, hook: HostHook) -> Self:
        """Call ``hook(host)`` when the host is built (plug-ins wire themselves here)."""
        self._host_hooks.append(hook)
        return self

    def _extension(self, name: str, extra: str) -> Callable[..., Any]:
        for entry in importlib.metadata.entry_points(group=EXTENSION_GROUP, name=name):
            return entry.load()  # type: ignore[no-any-return]
        raise ConfigurationError(
            f"{name}() is provided by an optional package that is not installed; "
            f"install it with `pip install evertask[{extra}]`."
        )

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
        engine = Engine(opts, registry, QueueManager(self._queue_configs()), storage)
        engine.log_capture = make_log_capture(opts)
        host = EverTaskHost(engine, self.container)
        builtins: dict[type, Callable[[], Any]] = {
            type(host.dispatcher): lambda: host.dispatcher,
            EverTaskHost: lambda: host,
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
