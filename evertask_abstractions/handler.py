"""The handler contract: one handler class per task type, built per execution."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any, ClassVar, Generic, ParamSpec, TypeAlias, TypeVar

from .cancellation import CancellationToken
from .ratelimit import RateLimitPolicy
from .retry import RetryPolicy
from .task import EverTask

__all__ = ["EverTaskHandler", "TaskLogger"]

T = TypeVar("T", bound=EverTask)
P = ParamSpec("P")
R = TypeVar("R")

TaskLogger: TypeAlias = "logging.LoggerAdapter[logging.Logger]"
"""The type of :attr:`EverTaskHandler.logger`: a stdlib ``LoggerAdapter``."""


class _MergingAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A LoggerAdapter that merges the caller's ``extra`` with its own (3.11's replaces it)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = kwargs.get("extra")
        kwargs["extra"] = {**(self.extra or {}), **extra} if extra else self.extra
        return msg, kwargs


class EverTaskHandler(Generic[T]):
    """Base class of task handlers.

    Subclass ``EverTaskHandler[MyTask]`` and implement ``handle`` (``async def`` runs on the
    event loop; a plain ``def`` runs in a worker thread). Constructor parameters are
    resolved from the dependency-injector container by their type annotations; a new
    handler instance is built for every execution and disposed after it.

    Class attributes (read once, when the handler is registered):

    - ``retry_policy``: :class:`RetryPolicy` or ``None`` (queue default, then global default).
    - ``timeout``: per-attempt ``timedelta`` or ``None`` (queue default, then global default).
    - ``queue_name``: target queue or ``None`` ("default", or "recurring" for recurring tasks).
    - ``task_type``: the task class; inferred from ``EverTaskHandler[MyTask]`` when omitted.
    - ``rate_limit``: a :class:`RateLimitPolicy` or ``None``: at most so many starts per
      period for each rate-limit key (see :meth:`get_rate_limit_key`, docs/throttling.md).
    - ``max_concurrency``: at most this many runs of this handler at once on this host
      (``None``: no limit beyond the queue's parallelism).
    - ``result_type``: the type of the value ``handle`` returns (any type pydantic's
      ``TypeAdapter`` takes). The value is validated and stored as JSON with the run;
      ``dispatcher.get_result(task_id, MyResult)`` and continuations read it back.
      ``None`` (default): a returned value is stored as JSON if it is serializable as is.

    A continuation's handler (a task dispatched with ``after=parent_id``) reads its
    parent through :attr:`parent_task_id` and :meth:`parent_result` (after a batch or a
    workflow group: :meth:`parent_results`).
    """

    retry_policy: ClassVar[RetryPolicy | None] = None
    timeout: ClassVar[timedelta | None] = None
    queue_name: ClassVar[str | None] = None
    task_type: ClassVar[type[EverTask] | None] = None
    rate_limit: ClassVar[RateLimitPolicy | None] = None
    max_concurrency: ClassVar[int | None] = None
    result_type: ClassVar[Any] = None

    # set per instance when first used (no __init__: calling ``super().__init__()`` from a
    # handler's constructor reaches object's, one Python call less per execution)
    _evertask_logger: TaskLogger | None
    _evertask_class_logger: ClassVar[logging.Logger | None] = None
    _evertask_task_id: uuid.UUID | None
    _evertask_parent: tuple[uuid.UUID, Callable[[uuid.UUID, Any, bool], Awaitable[Any]]] | None

    @property
    def logger(self) -> TaskLogger:
        """A stdlib-compatible logger for this run (records are captured per execution)."""
        log = getattr(self, "_evertask_logger", None)
        if log is None:
            cls = type(self)
            task_id = getattr(self, "_evertask_task_id", None)
            base = cls.__dict__.get("_evertask_class_logger")
            if base is None:  # one stdlib logger per handler class (not inherited), found once
                base = logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")
                cls._evertask_class_logger = base
            log = _MergingAdapter(
                base, {"evertask_task_id": task_id} if task_id is not None else {}
            )
            self._evertask_logger = log
        return log

    @property
    def parent_task_id(self) -> uuid.UUID | None:
        """The id of the task this continuation ran after (``None``: not a continuation)."""
        parent = getattr(self, "_evertask_parent", None)
        return None if parent is None else parent[0]

    async def parent_result(self, result_type: type[R] | Any = Any) -> R:
        """The parent task's stored result, validated as ``result_type`` (``Any``: the
        decoded JSON). ``None`` when the parent returned nothing.

        Raises :class:`~evertask_abstractions.TaskResultError` when this run is not a
        continuation, or the parent did not complete (a ``ContinueWhen.FAILED`` or
        ``FINISHED`` continuation of a failed parent: check the parent first).
        """
        from .errors import TaskResultError

        parent = getattr(self, "_evertask_parent", None)
        if parent is None:
            raise TaskResultError(
                f"{type(self).__qualname__} is not running as a continuation: it has no parent."
            )
        value: R = await parent[1](parent[0], result_type, False)
        return value

    async def parent_results(self, result_type: type[R] | Any = Any) -> list[R]:
        """The results of every member of the batch or workflow group this continuation
        ran after, in dispatch order, each validated as ``result_type`` (``None`` for a
        member that returned nothing, or did not complete when the continuation runs on
        ``FINISHED``/``FAILED``). After a single task: a list of its one result.

        Raises :class:`~evertask_abstractions.TaskResultError` when this run is not a
        continuation or a result does not fit ``result_type``.
        """
        from .errors import TaskResultError

        parent = getattr(self, "_evertask_parent", None)
        if parent is None:
            raise TaskResultError(
                f"{type(self).__qualname__} is not running as a continuation: it has no parent."
            )
        values: list[R] = await parent[1](parent[0], result_type, True)
        return values

    def _evertask_set_logger(self, logger: TaskLogger) -> None:
        self._evertask_logger = logger

    @classmethod
    def get_rate_limit_key(cls, task: T) -> str | None:
        """The rate-limit key of ``task`` (with :attr:`rate_limit` set): by default the
        task's ``rate_limit_key`` field or property. ``None`` or ``""``: not rate limited.

        Override it as a ``classmethod`` (or ``staticmethod``): it is called without a
        handler instance, before the handler is built.
        """
        key = getattr(task, "rate_limit_key", None)
        return key if isinstance(key, str) or key is None else str(key)

    def run_in_process(
        self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]:
        """Run ``func(*args, **kwargs)`` in a worker process of the host's pool and await
        its result (CPU-bound work, off the event loop and out of the GIL).

        ``func`` must be picklable (a module-level function); arguments and result cross
        the process boundary by pickle. The run's cancellation and timeout terminate the
        worker; its log records are kept with the run's logs. See docs/cpu-bound.md.
        """
        from .processes import current_process_runner

        return current_process_runner().run_call(func, args, kwargs, logger=self.logger)

    def handle(self, task: T, cancellation: CancellationToken) -> Any:
        """Do the work. Override as ``async def`` (event loop) or ``def`` (worker thread).

        A returned value is the task's result (see ``result_type``); ``None`` stores none.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement handle().")

    async def on_started(self, task_id: uuid.UUID) -> None:
        """Called before the first attempt."""

    async def on_completed(self, task_id: uuid.UUID) -> None:
        """Called after a successful run."""

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        """Called after a failed, timed-out or cancelled run with the last real exception."""

    async def on_retry(
        self, task_id: uuid.UUID, attempt: int, exception: BaseException, delay: timedelta
    ) -> None:
        """Called after the retry delay, right before retry number ``attempt`` (1-based)."""

    async def dispose(self) -> None:
        """Release resources; called once after every execution, whatever its outcome."""
