"""Formatters writing one JSON object (or one readable line) per record, with the task
context and trace ids added by :class:`TaskContextFilter`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from .context import task_fields

__all__ = ["ConsoleFormatter", "JsonFormatter", "TaskContextFilter"]

FIELDS = ("task_id", "task_type", "handler", "queue", "attempt", "trace_id", "span_id")
_ATTR = "evertask_fields"
_STANDARD = frozenset(
    (
        *vars(logging.LogRecord("", 0, "", 0, "", None, None)),
        "message",
        "asctime",
        "taskName",
        _ATTR,
        "evertask_task_id",  # set by handler loggers; reported as task_id
    )
)


class TaskContextFilter(logging.Filter):
    """Adds the current task context and trace ids to each record (``record.evertask_fields``).

    Runs where the record is logged, so it sees the execution's context even when the
    handler writes the record later or elsewhere.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _ATTR):
            fields = task_fields()
            if "task_id" not in fields:
                task_id = getattr(record, "evertask_task_id", None)
                if task_id is not None:
                    fields["task_id"] = str(task_id)
            setattr(record, _ATTR, fields)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, _ATTR, None)
    return fields if fields is not None else task_fields()


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``message``, the task
    fields, ``exception``, and the record's ``extra`` values."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_fields(record))
        for key, value in _extra(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO     logger: message  task_id=... queue=...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_fields(record), **_extra(record)}
        context = "  " + " ".join(f"{k}={v}" for k, v in fields.items()) if fields else ""
        line = (
            f"{_timestamp(record)} {record.levelname:<8} {record.name}: "
            f"{record.getMessage()}{context}"
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line
