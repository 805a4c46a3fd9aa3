"""Per-execution log capture (the persistent logger).

Every handler's ``self.logger`` forwards to the application's logging (a logger named
after the handler class). With the persistent logger enabled, the records of one
execution at or above ``minimum_level`` are also kept, whatever the application's logging
levels, and returned by :meth:`CaptureSession.finish` as :class:`ExecutionLogs` (a sequence
of ``TaskExecutionLog`` rows built when read): at most ``max_logs_per_task`` of them, then
one truncation marker. With ``capture_library_logs`` the records any stdlib logger creates
inside the execution's context (its asyncio task, or a thread started with a copy of it)
are kept as well.

With the persistent logger off :func:`make_log_capture` returns ``None`` and the engine
does nothing per run: the handler's default adapter is built only if the handler logs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from .ids import uuid7_int
from .options import EverTaskOptions
from .run import TaskRun
from .storage.models import ExecutionLogs, LogEntry

__all__ = [
    "CaptureSession",
    "PersistentLogCapture",
    "TaskLoggerAdapter",
    "level_name",
    "make_log_capture",
]

_SESSION: ContextVar[CaptureSession | None] = ContextVar("evertask_log_session", default=None)
_forwarding = threading.local()  # set while an adapter forwards a record it already kept
_factory_lock = threading.Lock()
_factory_installed = False


def level_name(level: int) -> str:
    """EverTask's level name for a stdlib level ("Information" for ``logging.INFO``...)."""
    name = _STANDARD_LEVEL_NAMES.get(level)
    return name if name is not None else _level_name(level)


def _level_name(level: int) -> str:
    if level >= logging.CRITICAL:
        return "Critical"
    if level >= logging.ERROR:
        return "Error"
    if level >= logging.WARNING:
        return "Warning"
    if level >= logging.INFO:
        return "Information"
    if level >= logging.DEBUG:
        return "Debug"
    return "Trace"


# the stdlib's own levels, looked up (one per kept record) instead of compared
_STANDARD_LEVEL_NAMES = {
    level: _level_name(level)
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
}


def _render(msg: object, args: Any) -> str:
    """``msg % args`` like ``LogRecord.getMessage``; a malformed template stays raw."""
    text = str(msg)
    if args:
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]
        try:
            text = text % args
        except Exception:
            pass
    return text


def _exception_text(exc_info: Any) -> str | None:
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    if exc_info[0] is None:
        return None
    try:
        return "".join(traceback.format_exception(*exc_info)).rstrip()
    except Exception:
        return repr(exc_info[1])


class CaptureSession:
    """The records kept for one execution."""

    __slots__ = ("closed", "dropped", "entries", "library", "limit", "minimum", "task_id")

    def __init__(self, task_id: uuid.UUID, minimum: int, limit: int | None, library: bool) -> None:
        self.task_id = task_id
        self.minimum = minimum
        self.limit = limit
        self.library = library
        self.entries: list[LogEntry] = []
        self.dropped = 0
        self.closed = False

    def keep(self, created: float, level: int, message: str, exception: str | None) -> None:
        """Keep one record (or count it once the cap is reached)."""
        if self.closed:
            return
        limit = self.limit
        if limit is not None and len(self.entries) >= limit:
            self.dropped += 1
            return
        self.entries.append((uuid7_int(), created, level_name(level), message, exception))

    def finish(self) -> ExecutionLogs | None:
        """Stop capturing; the kept records (``None`` when there are none or when called
        again)."""
        if self.closed:
            return None
        self.closed = True
        if self.library and _SESSION.get() is self:
            _SESSION.set(None)
        entries = self.entries
        if self.dropped:
            entries.append(
                (
                    uuid7_int(),
                    time.time(),
                    level_name(logging.WARNING),
                    f"[EverTask] {self.dropped} log entries truncated: "
                    f"max_logs_per_task ({self.limit}) reached",
                    None,
                )
            )
        return ExecutionLogs(self.task_id, entries) if entries else None


class TaskLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """A handler's logger while its execution is captured.

    Standard ``LoggerAdapter`` behaviour (``%``-style args, ``exc_info``, ``stack_info``,
    ``stacklevel``) plus: ``extra`` is merged with the task id instead of replaced, and
    records at or above the capture's minimum level are kept even when the application's
    logging filters them out.
    """

    def __init__(self, logger: logging.Logger, session: CaptureSession) -> None:
        super().__init__(logger, {"evertask_task_id": session.task_id})
        self._session = session

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        """Merge the caller's ``extra`` with the task id (the stdlib adapter replaces it)."""
        extra = kwargs.get("extra")
        kwargs["extra"] = {**self.extra, **extra} if extra else self.extra  # type: ignore[dict-item]
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:
        return level >= self._session.minimum or self.logger.isEnabledFor(level)

    @property
    def capture_level(self) -> int:
        """The lowest level this execution keeps."""
        return self._session.minimum

    def keep_record(self, record: logging.LogRecord) -> None:
        """Keep a record made elsewhere for this execution (a worker process's), if it is
        at or above the capture's minimum level; forwarding it is the caller's part."""
        session = self._session
        if record.levelno >= session.minimum and not session.closed:
            session.keep(record.created, record.levelno, record.getMessage(), record.exc_text)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        session = self._session
        if level >= session.minimum and not session.closed:
            session.keep(
                time.time(), level, _render(msg, args), _exception_text(kwargs.get("exc_info"))
            )
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        msg, kwargs = self.process(msg, kwargs)
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2  # report the caller, not us
        if session.library:
            _forwarding.active = True
            try:
                _forward(logger, level, msg, args, kwargs)
            finally:
                _forwarding.active = False
        else:
            _forward(logger, level, msg, args, kwargs)


def _forward(
    logger: logging.Logger, level: int, msg: object, args: Any, kwargs: dict[str, Any]
) -> None:
    """Forward to logging; a record its handlers cannot format is forwarded raw (a log
    call never fails the task)."""
    try:
        logger.log(level, msg, *args, **kwargs)
    except Exception:
        try:
            logger.log(level, "%s %r", msg, args, **kwargs)
        except Exception:
            pass


class PersistentLogCapture:
    """The engine's log-capture plug-in (see :func:`make_log_capture`)."""

    def __init__(self, minimum_level: int, max_logs: int | None, library: bool) -> None:
        self.minimum_level = minimum_level
        self.max_logs = max_logs
        self.library = library
        self._loggers: dict[type, logging.Logger] = {}
        if library:
            _install_record_factory()

    def begin(self, run: TaskRun, handler: Any) -> CaptureSession:
        """Capture one execution: give the handler a capturing logger."""
        session = CaptureSession(run.id, self.minimum_level, self.max_logs, self.library)
        cls = type(handler)
        logger = self._loggers.get(cls)
        if logger is None:
            logger = logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")
            self._loggers[cls] = logger
        handler._evertask_logger = TaskLoggerAdapter(logger, session)
        if self.library:
            _SESSION.set(session)  # we run inside the execution's own context
        return session


def make_log_capture(options: EverTaskOptions) -> PersistentLogCapture | None:
    """The capture for ``options.persistent_logger``, or ``None`` when it is off."""
    persistent = options.persistent_logger
    if not persistent.enabled:
        return None
    return PersistentLogCapture(
        persistent.minimum_level, persistent.max_logs_per_task, persistent.capture_library_logs
    )


def _install_record_factory() -> None:
    """Wrap the log-record factory once per process: records created while a capturing
    execution's context is current are kept by that execution (loggers with
    ``propagate=False`` included, and without adding a handler to the root logger)."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()
        get_session = _SESSION.get

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            session = get_session()
            if (
                session is not None
                # (logging.makeLogRecord builds a blank record, level None, and fills it in
                # after the factory: not a log call to keep)
                and isinstance(record.levelno, int)
                and record.levelno >= session.minimum
                and not getattr(_forwarding, "active", False)
            ):
                try:
                    message = record.getMessage()
                except Exception:
                    message = str(record.msg)
                session.keep(record.created, record.levelno, message, _record_exc(record))
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


def _record_exc(record: logging.LogRecord) -> str | None:
    return _exception_text(record.exc_info) if record.exc_info else None
