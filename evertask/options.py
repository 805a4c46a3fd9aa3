"""Engine options and queue configuration (EverTask's defaults; docs/options.md has them all)."""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pkgutil
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any, Self

from evertask_abstractions import (
    AuditLevel,
    ConfigurationError,
    EverTaskHandler,
    LinearRetryPolicy,
    QueueFullBehavior,
    RetryPolicy,
)

from .clock import Clock, SystemClock
from .ratelimit import KeyedRateLimiter
from .resources import ResourceProbe

__all__ = [
    "DEFAULT_QUEUE",
    "RECURRING_QUEUE",
    "AdaptiveThrottlingOptions",
    "EverTaskOptions",
    "PersistentLoggerOptions",
    "ProcessPoolOptions",
    "QueueConfiguration",
    "RateLimiterOptions",
]

DEFAULT_QUEUE = "default"
RECURRING_QUEUE = "recurring"

_CPUS = os.cpu_count() or 1


def _check_positive_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be an integer >= 1, got {value!r}.")
    return value


def _check_timeout(value: timedelta | float | None, what: str) -> timedelta | None:
    if value is None:
        return None
    td = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
    if td <= timedelta(0):
        raise ConfigurationError(f"{what} must be positive (or None for no timeout), got {td}.")
    return td


def _check_policy(policy: RetryPolicy) -> RetryPolicy:
    if not isinstance(policy, RetryPolicy):
        raise ConfigurationError(
            f"{policy!r} is not a retry policy: it needs async execute(attempt, on_retry) "
            "and should_retry(exception). Use LinearRetryPolicy or ExponentialRetryPolicy."
        )
    return policy


@dataclass
class QueueConfiguration:
    """One named queue: its consumers, its capacity, its defaults and its full behaviour."""

    name: str
    max_degree_of_parallelism: int = 1
    channel_capacity: int = 500
    default_retry_policy: RetryPolicy | None = None
    default_timeout: timedelta | None = None
    queue_full_behavior: QueueFullBehavior = QueueFullBehavior.FALLBACK_TO_DEFAULT

    def set_max_degree_of_parallelism(self, value: int) -> Self:
        """Number of consumers running tasks of this queue at once (>= 1)."""
        self.max_degree_of_parallelism = _check_positive_int(value, "max_degree_of_parallelism")
        return self

    def set_channel_capacity(self, value: int) -> Self:
        """How many tasks may wait in this queue (>= 1)."""
        self.channel_capacity = _check_positive_int(value, "channel_capacity")
        return self

    def set_default_retry_policy(self, policy: RetryPolicy) -> Self:
        """Retry policy for handlers of this queue that declare none."""
        self.default_retry_policy = _check_policy(policy)
        return self

    def set_default_timeout(self, timeout: timedelta | float | None) -> Self:
        """Per-attempt timeout for handlers of this queue that declare none."""
        self.default_timeout = _check_timeout(timeout, "default_timeout")
        return self

    def set_full_behavior(self, behavior: QueueFullBehavior) -> Self:
        """What an immediate dispatch does when this queue is full."""
        self.queue_full_behavior = QueueFullBehavior(behavior)
        return self

    def clone(self, name: str | None = None) -> QueueConfiguration:
        """A copy, optionally renamed."""
        return QueueConfiguration(
            name or self.name,
            self.max_degree_of_parallelism,
            self.channel_capacity,
            self.default_retry_policy,
            self.default_timeout,
            self.queue_full_behavior,
        )


@dataclass
class PersistentLoggerOptions:
    """Storage of the log records a handler writes during one execution."""

    enabled: bool = False
    minimum_level: int = logging.INFO
    max_logs_per_task: int | None = 1000
    capture_library_logs: bool = False

    def enable(self) -> Self:
        """Store captured logs with the run."""
        self.enabled = True
        return self

    def disable(self) -> Self:
        """Do not store captured logs (they are still forwarded to logging)."""
        self.enabled = False
        return self

    def set_minimum_level(self, level: int | str) -> Self:
        """Lowest level stored (records below it are only forwarded)."""
        resolved = logging.getLevelName(level) if isinstance(level, str) else level
        if not isinstance(resolved, int):
            raise ConfigurationError(
                f"Unknown log level {level!r}; use e.g. logging.INFO or 'INFO'."
            )
        self.minimum_level = resolved
        return self

    def set_max_logs_per_task(self, value: int | None) -> Self:
        """At most this many records per execution, then one truncation marker (None: no cap)."""
        if value is not None:
            _check_positive_int(value, "max_logs_per_task")
        self.max_logs_per_task = value
        return self

    def set_capture_library_logs(self, value: bool = True) -> Self:
        """Also capture records that libraries emit through any stdlib logger during the run."""
        self.capture_library_logs = value
        return self


@dataclass
class RateLimiterOptions:
    """The host's keyed rate limiter (handlers declare their policies: docs/throttling.md)."""

    max_parked_tasks: int = 0
    """Runs parked for a reserved slot at most; beyond it a lane that would park one more
    waits (up to 5 s) for room, pushing back on producers. 0: ``min(5000, 2 x`` the
    default queue's capacity)."""
    max_tracked_keys: int = 100_000
    max_key_length: int = 256
    emit_deferral_events: bool = True
    limiter: KeyedRateLimiter | None = None
    cluster_wide: bool = True
    """On a storage shared by several nodes (the SQL storages), budgets and
    ``max_concurrency`` permits live in the database, shared by every node; ``False``
    keeps them per node (in memory)."""

    def set_max_parked_tasks(self, value: int) -> Self:
        """Runs parked for their slot at most (0: ``min(5000, 2 x default capacity)``)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"max_parked_tasks must be an integer >= 0, got {value!r}.")
        self.max_parked_tasks = value
        return self

    def set_max_tracked_keys(self, value: int) -> Self:
        """Keys the in-memory limiter tracks at most; new keys beyond run unlimited (fail
        open, with a warning at most every 30 s)."""
        self.max_tracked_keys = _check_positive_int(value, "max_tracked_keys")
        return self

    def set_max_key_length(self, value: int) -> Self:
        """Longer keys are replaced by their SHA-256 (``sha256:<hex>``)."""
        self.max_key_length = _check_positive_int(value, "max_key_length")
        return self

    def set_emit_deferral_events(self, value: bool) -> Self:
        """Publish ``rate_limited`` events for deferrals (one per type and key per 30 s)."""
        self.emit_deferral_events = bool(value)
        return self

    def set_cluster_wide(self, value: bool) -> Self:
        """``True`` (default): on a SQL storage, rate-limit budgets and ``max_concurrency``
        permits are shared by every node through the database. ``False``: per node, in
        memory (no round trip per admission; N nodes allow N times the limits)."""
        self.cluster_wide = bool(value)
        return self

    def use_limiter(self, limiter: KeyedRateLimiter) -> Self:
        """Replace the in-memory limiter (e.g. with a cluster-wide one)."""
        if not isinstance(limiter, KeyedRateLimiter):
            raise ConfigurationError(f"{limiter!r} is not a KeyedRateLimiter.")
        self.limiter = limiter
        return self


@dataclass
class AdaptiveThrottlingOptions:
    """Adaptive throttling: the node takes no new work while its process's CPU or memory
    is at or above a threshold, and resumes below ``resume_ratio`` times it
    (docs/throttling.md). Off until a threshold is set."""

    cpu_threshold: float | None = None
    """CPU seconds per second of this process (1.0: one core busy), or ``None``."""
    memory_threshold_bytes: int | None = None
    """Resident memory of this process in bytes, or ``None``."""
    check_interval: timedelta = timedelta(seconds=1)
    resume_ratio: float = 0.9
    probe: ResourceProbe | None = None

    @property
    def enabled(self) -> bool:
        """Whether a threshold is set."""
        return self.cpu_threshold is not None or self.memory_threshold_bytes is not None

    def set_cpu_threshold(self, value: float | None) -> Self:
        """Pause at this CPU use (cores: 0.85 = 85 % of one core; above 1 with threads);
        ``None`` turns the CPU check off."""
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
        ):
            raise ConfigurationError(f"cpu_threshold must be a positive number, got {value!r}.")
        self.cpu_threshold = None if value is None else float(value)
        return self

    def set_memory_threshold_bytes(self, value: int | None) -> Self:
        """Pause at this resident memory (bytes); ``None`` turns the memory check off."""
        self.memory_threshold_bytes = (
            None if value is None else _check_positive_int(value, "memory_threshold_bytes")
        )
        return self

    def set_check_interval(self, value: timedelta | float) -> Self:
        """How often the process is sampled (default 1 s)."""
        interval = _check_timeout(value, "check_interval")
        assert interval is not None
        self.check_interval = interval
        return self

    def set_resume_ratio(self, value: float) -> Self:
        """Resume once every measure is below this fraction of its threshold (default
        0.9; 1.0: no hysteresis)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ConfigurationError(f"resume_ratio must be in (0, 1], got {value!r}.")
        self.resume_ratio = float(value)
        return self

    def use_probe(self, probe: ResourceProbe) -> Self:
        """Measure with ``probe`` (an object with ``sample() -> ResourceSample``)."""
        if not callable(getattr(probe, "sample", None)):
            raise ConfigurationError(f"{probe!r} has no sample() method.")
        self.probe = probe
        return self


@dataclass
class ProcessPoolOptions:
    """The host's pool of worker processes for CPU-bound work (docs/cpu-bound.md).

    The pool starts no process until the first call; it stops with the host.
    """

    size: int | None = None
    """Worker processes at most (``None``: ``os.cpu_count()``)."""
    max_tasks_per_worker: int | None = None
    """A worker is replaced after this many calls (``None``: never)."""
    start_method: str | None = None
    """``"forkserver"`` (the default on Linux) or ``"spawn"`` (the default elsewhere)."""
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    worker_nice: int = 10
    """Added to each worker's niceness (POSIX), so the host's event loop wins the CPU."""
    terminate_timeout: float = 0.5
    """After a cancel or a timeout the worker gets SIGTERM, then SIGKILL this much later."""
    start_timeout: float = 60.0
    """How long a new worker may take to start (initializer included)."""
    stop_timeout: float = 5.0
    """At host stop, how long idle workers get to exit before they are terminated."""
    worker_log_level: int | None = None
    """Lowest level of the records a worker sends back (``None``: the lower of the run's
    log-capture minimum and the host's root logger level)."""
    forkserver_preload: tuple[str, ...] = ("evertask.processes.worker",)
    """Modules the forkserver imports once, so each worker starts without importing them."""

    @property
    def effective_size(self) -> int:
        """The pool size in use."""
        return self.size or _CPUS

    @property
    def effective_start_method(self) -> str:
        """The start method in use."""
        if self.start_method is not None:
            return self.start_method
        return "forkserver" if platform.system() == "Linux" else "spawn"

    def set_size(self, size: int) -> Self:
        """Worker processes at most (default: the CPU count)."""
        self.size = _check_positive_int(size, "process pool size")
        return self

    def set_max_tasks_per_worker(self, count: int | None) -> Self:
        """Replace a worker after ``count`` calls (``None``: never), which bounds what a
        leaking library can hold."""
        if count is not None:
            _check_positive_int(count, "max_tasks_per_worker")
        self.max_tasks_per_worker = count
        return self

    def set_start_method(self, method: str) -> Self:
        """``"forkserver"`` or ``"spawn"``; ``"fork"`` is refused."""
        if method == "fork":
            raise ConfigurationError(
                "The process pool refuses the 'fork' start method: it copies the host process "
                "while its threads (the event loop's executors, storage drivers, exporters) "
                "may hold locks, and a worker can then deadlock on its first import or log "
                "line. Use set_start_method('forkserver') (the default on Linux) or "
                "set_start_method('spawn')."
            )
        available = [m for m in multiprocessing.get_all_start_methods() if m != "fork"]
        if method not in available:
            raise ConfigurationError(
                f"Unknown or unavailable start method {method!r}; on this platform use one "
                f"of {', '.join(repr(m) for m in available)}."
            )
        self.start_method = method
        return self

    def set_initializer(self, initializer: Callable[..., object], *args: Any) -> Self:
        """Run ``initializer(*args)`` in each worker when it starts (picklable: a module-level
        function), e.g. to configure logging or an OpenTelemetry SDK in the worker."""
        if not callable(initializer):
            raise ConfigurationError(f"The initializer must be callable, got {initializer!r}.")
        self.initializer = initializer
        self.initargs = args
        return self

    def set_worker_nice(self, increment: int) -> Self:
        """Niceness added to each worker (POSIX; 0: none; default 10)."""
        if isinstance(increment, bool) or not isinstance(increment, int) or increment < 0:
            raise ConfigurationError(f"worker_nice must be an integer >= 0, got {increment!r}.")
        self.worker_nice = increment
        return self

    def set_terminate_timeout(self, seconds: float) -> Self:
        """Between SIGTERM and SIGKILL of a cancelled worker (default 0.5 s)."""
        self.terminate_timeout = _check_seconds(seconds, "terminate_timeout", zero=True)
        return self

    def set_start_timeout(self, seconds: float) -> Self:
        """How long a new worker may take to start (default 60 s)."""
        self.start_timeout = _check_seconds(seconds, "start_timeout")
        return self

    def set_stop_timeout(self, seconds: float) -> Self:
        """At host stop, how long idle workers get to exit (default 5 s)."""
        self.stop_timeout = _check_seconds(seconds, "stop_timeout", zero=True)
        return self

    def set_worker_log_level(self, level: int | str | None) -> Self:
        """Lowest level of the records workers send back (``None``: see the field)."""
        resolved = logging.getLevelName(level) if isinstance(level, str) else level
        if resolved is not None and not isinstance(resolved, int):
            raise ConfigurationError(f"Unknown log level {level!r}; use e.g. logging.INFO.")
        self.worker_log_level = resolved
        return self

    def set_forkserver_preload(self, *modules: str) -> Self:
        """Modules the forkserver imports before forking workers (added to EverTask's)."""
        self.forkserver_preload = (*ProcessPoolOptions.forkserver_preload, *modules)
        return self


def _check_seconds(value: float, what: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {value!r}.")
    if value < 0 or (value == 0 and not zero):
        raise ConfigurationError(f"{what} must be {'>= 0' if zero else '> 0'}, got {value!r}.")
    return float(value)


@dataclass
class EverTaskOptions:
    """Global engine options; every setter validates and returns the options for chaining."""

    channel_capacity: int = field(default_factory=lambda: max(1000, _CPUS * 200))
    max_degree_of_parallelism: int = field(default_factory=lambda: max(4, _CPUS * 2))
    throw_if_unable_to_persist: bool = True
    default_retry_policy: RetryPolicy = field(
        default_factory=lambda: LinearRetryPolicy(3, timedelta(milliseconds=500))
    )
    default_timeout: timedelta | None = None
    default_audit_level: AuditLevel = AuditLevel.FULL
    use_lazy_handler_resolution: bool = True
    persistent_logger: PersistentLoggerOptions = field(default_factory=PersistentLoggerOptions)
    scheduler_shards: int | None = None
    shutdown_grace_period: timedelta = timedelta(seconds=30)
    event_buffer_size: int = 10_000
    sync_handler_threads: int | None = None
    clock: Clock = field(default_factory=SystemClock)
    rate_limiter: RateLimiterOptions = field(default_factory=RateLimiterOptions)
    adaptive_throttling: AdaptiveThrottlingOptions = field(
        default_factory=AdaptiveThrottlingOptions
    )
    process_pool: ProcessPoolOptions = field(default_factory=ProcessPoolOptions)
    lease_duration: timedelta = timedelta(seconds=30)
    heartbeat_interval: timedelta | None = None
    cluster_poll_interval: timedelta = timedelta(seconds=1)
    run_workers: bool = True
    handler_modules: list[ModuleType] = field(default_factory=list)
    handler_classes: list[type[EverTaskHandler]] = field(default_factory=list)  # type: ignore[type-arg]

    # -- queue defaults --------------------------------------------------------------------
    def set_channel_options(self, capacity: int) -> Self:
        """Capacity of the default (and recurring) queue (>= 1)."""
        self.channel_capacity = _check_positive_int(capacity, "channel capacity")
        return self

    set_channel_capacity = set_channel_options

    def set_max_degree_of_parallelism(self, value: int) -> Self:
        """Consumers of the default (and recurring) queue (>= 1)."""
        self.max_degree_of_parallelism = _check_positive_int(value, "max_degree_of_parallelism")
        return self

    # -- behaviour -------------------------------------------------------------------------
    def set_throw_if_unable_to_persist(self, value: bool) -> Self:
        """True (default): a dispatch whose row cannot be stored raises and nothing runs.

        False: the failure is logged and the task still runs, in memory only.
        """
        self.throw_if_unable_to_persist = bool(value)
        return self

    def set_default_retry_policy(self, policy: RetryPolicy) -> Self:
        """Retry policy for handlers and queues that declare none."""
        self.default_retry_policy = _check_policy(policy)
        return self

    def set_default_timeout(self, timeout: timedelta | float | None) -> Self:
        """Per-attempt timeout for handlers and queues that declare none (default: none)."""
        self.default_timeout = _check_timeout(timeout, "default_timeout")
        return self

    def set_default_audit_level(self, level: AuditLevel) -> Self:
        """Audit level of dispatches that do not pass one."""
        self.default_audit_level = AuditLevel(level)
        return self

    def set_use_lazy_handler_resolution(self, value: bool) -> Self:
        """True (default): handlers are built when they run. False: an immediate dispatch
        builds its handler at once, so dependency errors surface at dispatch."""
        self.use_lazy_handler_resolution = bool(value)
        return self

    def disable_lazy_handler_resolution(self) -> Self:
        """Same as ``set_use_lazy_handler_resolution(False)``."""
        return self.set_use_lazy_handler_resolution(False)

    def with_persistent_logger(self, configure: object = None) -> Self:
        """Store the logs each execution writes; ``configure(PersistentLoggerOptions)`` tunes it."""
        self.persistent_logger.enabled = True
        if configure is not None:
            if not callable(configure):
                raise ConfigurationError("with_persistent_logger() takes a callable or nothing.")
            configure(self.persistent_logger)
        return self

    def use_sharded_scheduler(self, shards: int = 0) -> Self:
        """Accepted for EverTask compatibility; an alias of the default scheduler.

        On one event loop several heaps measured no faster than one (see
        docs/scheduler.md and ``python -m benchmarks scheduler``), so the default single-heap
        scheduler is used. The value is still validated and recorded.
        """
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 0:
            raise ConfigurationError(f"shards must be an integer >= 0, got {shards!r}.")
        self.scheduler_shards = shards or max(4, _CPUS)
        return self

    def set_shutdown_grace_period(self, grace: timedelta | float) -> Self:
        """How long a stop waits for running handlers before cancelling them (default 30 s)."""
        td = grace if isinstance(grace, timedelta) else timedelta(seconds=float(grace))
        if td < timedelta(0):
            raise ConfigurationError(f"shutdown grace period must not be negative, got {td}.")
        self.shutdown_grace_period = td
        return self

    def set_event_buffer_size(self, size: int) -> Self:
        """Events buffered per subscriber before new ones are dropped (and counted)."""
        self.event_buffer_size = _check_positive_int(size, "event_buffer_size")
        return self

    def set_sync_handler_threads(self, threads: int) -> Self:
        """Threads running synchronous handlers (default: the queues' total parallelism)."""
        self.sync_handler_threads = _check_positive_int(threads, "sync_handler_threads")
        return self

    # -- cluster ---------------------------------------------------------------------------
    def set_lease_duration(self, lease: timedelta | float) -> Self:
        """How long this host owns its tasks without a heartbeat (default 30 s).

        A host that stops heartbeating (killed, partitioned) is dead once its lease ends;
        the other hosts on the same database then take over its tasks (docs/cluster.md).
        """
        lease = _check_interval(lease, "lease_duration")
        self._check_heartbeat(lease, self.heartbeat_interval)
        self.lease_duration = lease
        return self

    def set_heartbeat_interval(self, interval: timedelta | float) -> Self:
        """How often this host renews its lease (default: a third of the lease)."""
        heartbeat = _check_interval(interval, "heartbeat_interval")
        self._check_heartbeat(self.lease_duration, heartbeat)
        self.heartbeat_interval = heartbeat
        return self

    def set_cluster_poll_interval(self, interval: timedelta | float) -> Self:
        """How often a worker host looks for tasks no live host owns, while other hosts
        share its database (default 1 s; a host alone on its database never polls)."""
        self.cluster_poll_interval = _check_interval(interval, "cluster_poll_interval")
        return self

    def set_run_workers(self, value: bool) -> Self:
        """False: a dispatch-only host (a web process beside worker processes): it
        persists dispatches and runs nothing; worker hosts on the same database run them.
        Needs a SQL storage."""
        self.run_workers = bool(value)
        return self

    @property
    def effective_heartbeat_interval(self) -> timedelta:
        """The heartbeat interval in use (a third of the lease unless set)."""
        return self.heartbeat_interval or self.lease_duration / 3

    @staticmethod
    def _check_heartbeat(lease: timedelta, heartbeat: timedelta | None) -> None:
        if heartbeat is not None and heartbeat >= lease:
            raise ConfigurationError(
                f"The heartbeat interval ({heartbeat}) must be shorter than the lease "
                f"({lease}), e.g. a third of it; a host renews its lease by heartbeating."
            )

    def configure_rate_limiter(self, configure: object) -> Self:
        """Tune the keyed rate limiter: ``configure(RateLimiterOptions)``."""
        if not callable(configure):
            raise ConfigurationError("configure_rate_limiter() takes a callable.")
        configure(self.rate_limiter)
        return self

    def configure_adaptive_throttling(self, configure: object) -> Self:
        """Pause this node while its CPU or memory is above a threshold:
        ``configure(AdaptiveThrottlingOptions)``."""
        if not callable(configure):
            raise ConfigurationError("configure_adaptive_throttling() takes a callable.")
        configure(self.adaptive_throttling)
        return self

    def configure_process_pool(self, configure: object) -> Self:
        """Tune the pool of worker processes for CPU-bound work:
        ``configure(ProcessPoolOptions)`` (docs/cpu-bound.md)."""
        if not callable(configure):
            raise ConfigurationError("configure_process_pool() takes a callable.")
        configure(self.process_pool)
        return self

    def use_clock(self, clock: Clock) -> Self:
        """Replace the time source (tests use :class:`~evertask.clock.ManualClock`)."""
        self.clock = clock
        return self

    # -- registration ----------------------------------------------------------------------
    def register_tasks_from_module(self, *modules: ModuleType | str) -> Self:
        """Register every handler class defined in these modules."""
        if not modules:
            raise ConfigurationError("register_tasks_from_module() needs at least one module.")
        for module in modules:
            self.handler_modules.append(_as_module(module))
        return self

    register_tasks_from_modules = register_tasks_from_module

    def register_tasks_from_package(self, *packages: ModuleType | str) -> Self:
        """Register every handler class defined in these packages and all their submodules."""
        if not packages:
            raise ConfigurationError("register_tasks_from_package() needs at least one package.")
        for package in packages:
            pkg = _as_module(package)
            self.handler_modules.append(pkg)
            path = getattr(pkg, "__path__", None)
            if path is None:
                continue  # a plain module: just itself
            for info in pkgutil.walk_packages(path, prefix=pkg.__name__ + "."):
                self.handler_modules.append(importlib.import_module(info.name))
        return self

    def register_handler(self, *handlers: type[EverTaskHandler]) -> Self:  # type: ignore[type-arg]
        """Register handler classes explicitly."""
        for handler in handlers:
            if not (isinstance(handler, type) and issubclass(handler, EverTaskHandler)):
                raise ConfigurationError(f"{handler!r} is not an EverTaskHandler subclass.")
            self.handler_classes.append(handler)
        return self


def _check_interval(value: timedelta | float, name: str) -> timedelta:
    td = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
    if td <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive, got {td}.")
    return td


def _as_module(module: ModuleType | str) -> ModuleType:
    if isinstance(module, ModuleType):
        return module
    if isinstance(module, str):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"Cannot import module {module!r} to register tasks: {exc}"
            ) from exc
    raise ConfigurationError(f"Expected a module or a module name, got {module!r}.")
