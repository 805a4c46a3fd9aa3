"""CPU-bound work in worker processes: the contract handlers use (the engine owns the pool).

Two ways for a handler to run work in one of the host's worker processes:

- subclass :class:`CpuBoundHandler` and implement ``compute(task)`` (a ``staticmethod`` or
  ``classmethod``): the task crosses the process boundary in its own JSON form, is rebuilt
  in the worker and passed to ``compute``; its return value comes back by pickle and is
  handed to ``on_computed(task, result)`` in the host, where the handler's dependencies are;
- from any ``async def handle``: ``await self.run_in_process(func, *args, **kwargs)`` with a
  module-level (picklable) ``func``; arguments and result cross by pickle.

The task's cancellation and its per-attempt timeout reach the work: the worker running it
is terminated and replaced. See docs/cpu-bound.md.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from .cancellation import CancellationToken
from .errors import ConfigurationError, EverTaskError
from .handler import EverTaskHandler
from .task import EverTask

__all__ = [
    "CpuBoundHandler",
    "ProcessPoolClosedError",
    "ProcessRunner",
    "ProcessTaskError",
    "RemoteTraceback",
    "WorkerCrashedError",
    "current_process_runner",
    "set_process_runner",
]

T = TypeVar("T", bound=EverTask)


class ProcessRunner(Protocol):
    """What runs a call in a worker process (the host's ``ProcessPool``)."""

    def run_call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        logger: Any = None,
    ) -> Awaitable[Any]:
        """Run ``func(*args, **kwargs)`` in a worker; ``logger`` is the run's logger (the
        worker's log records are kept with the run's logs through it)."""
        ...


_RUNNER: contextvars.ContextVar[ProcessRunner | None] = contextvars.ContextVar(
    "evertask_process_runner", default=None
)


def set_process_runner(runner: ProcessRunner | None) -> contextvars.Token[ProcessRunner | None]:
    """Make :meth:`EverTaskHandler.run_in_process` use ``runner`` in the current context (a
    host sets its pool in its executions' context)."""
    return _RUNNER.set(runner)


def current_process_runner() -> ProcessRunner:
    """The process pool of the host running the current execution."""
    runner = _RUNNER.get()
    if runner is None:
        raise RuntimeError(
            "run_in_process() runs work in the process pool of the EverTask host executing "
            "the task, and no host is executing one here. Call it from a handler run by a "
            "host, or use host.process_pool.run(func, ...) directly."
        )
    return runner


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text.

    It is the ``__cause__`` of the exception re-raised in the host, so the stored failure
    text shows where the work failed in the worker.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'


class ProcessTaskError(EverTaskError):
    """The work raised an exception in its worker process that could not be sent back as
    itself (it could not be pickled); its type, message and traceback are kept."""

    def __init__(self, exception_type: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{exception_type}: {message}" if message else exception_type)
        self.exception_type = exception_type
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.exception_type, str(self), self.remote_traceback))


class WorkerCrashedError(EverTaskError):
    """The worker process running the work died (killed, out of memory, a crash in native
    code). It is an ordinary failure: the retry policy decides whether it runs again."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.exitcode))


class ProcessPoolClosedError(EverTaskError, RuntimeError):
    """The host's process pool is stopped (the host is stopping or stopped)."""


def _compute(handler: type[CpuBoundHandler[Any]], task_class: type[EverTask], payload: str) -> Any:
    """Runs in the worker: rebuild the task from its JSON and compute it."""
    return handler.compute(task_class.model_validate_json(payload))


class CpuBoundHandler(EverTaskHandler[T]):
    """A handler whose work runs in a worker process of the host's pool.

    Implement ``compute(task)`` as a ``staticmethod`` (or ``classmethod``): it runs in a
    worker process, without a handler instance (the container's objects live in the host).
    The task reaches it in its own JSON form (``model_dump_json`` / ``model_validate_json``);
    what it returns comes back by pickle and is passed to :meth:`on_computed`, which runs
    in the host with the handler's injected dependencies::

        class RenderReportHandler(CpuBoundHandler[RenderReport]):
            timeout = timedelta(minutes=5)      # terminates the worker when it expires

            def __init__(self, reports: ReportStore) -> None:
                self._reports = reports

            @staticmethod
            def compute(task: RenderReport) -> bytes:
                return render_pdf(task.report_id)          # pure CPU, in a worker process

            async def on_computed(self, task: RenderReport, result: bytes) -> None:
                await self._reports.save(task.report_id, result)

    Everything else is an ordinary handler: retry policy, timeout, queue, rate limit,
    hooks. Logs written in ``compute`` are kept with the run's logs.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        raw = cls.__dict__.get("compute")
        if raw is not None and not isinstance(raw, staticmethod | classmethod):
            raise ConfigurationError(
                f"{cls.__qualname__}.compute runs in a worker process, where there is no "
                "handler instance (its dependencies live in the host): declare it "
                "@staticmethod (def compute(task)) or @classmethod (def compute(cls, task))."
            )

    @staticmethod
    def compute(task: Any) -> Any:
        """The work, run in a worker process; what it returns is given to :meth:`on_computed`."""
        raise NotImplementedError("CpuBoundHandler subclasses implement compute(task).")

    async def handle(self, task: T, cancellation: CancellationToken) -> None:
        """Compute ``task`` in a worker process, then pass the result to :meth:`on_computed`."""
        result = await self.compute_in_process(task)
        await self.on_computed(task, result)

    def compute_in_process(self, task: T) -> Awaitable[Any]:
        """``compute(task)`` in a worker process (the task sent in its JSON form)."""
        return self.run_in_process(_compute, type(self), type(task), task.model_dump_json())

    async def on_computed(self, task: T, result: Any) -> None:
        """Called in the host with what ``compute`` returned (default: nothing)."""
