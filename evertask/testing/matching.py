"""Selecting recorded dispatches and executions, and readable assertion messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from evertask_abstractions import EverTask

__all__ = ["TaskSpec", "describe_spec", "listing", "select"]

TaskSpec = type[EverTask] | EverTask
"""A task class (matches its instances, subclasses included) or a task instance (matches an
equal payload: same class, same field values)."""


class _Record(Protocol):
    @property
    def task(self) -> EverTask: ...

    def describe(self) -> str: ...


R = TypeVar("R", bound=_Record)


def _check_at(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            f"at={at.isoformat()} is naive; pass an aware datetime, e.g. "
            "datetime(2026, 1, 1, 9, 0, tzinfo=UTC)."
        )
    return at.astimezone(UTC)


def _check_spec(spec: TaskSpec | None) -> None:
    if spec is None or isinstance(spec, EverTask):
        return
    if not (isinstance(spec, type) and issubclass(spec, EverTask)):
        raise TypeError(
            f"Expected an EverTask class or instance, got {spec!r}; e.g. "
            "assert_dispatched(SendEmail) or assert_dispatched(SendEmail(to='a@b.c'))."
        )


def select(
    records: Sequence[R],
    spec: TaskSpec | None,
    where: Callable[[R], bool] | None,
    at: datetime | None,
    when: Callable[[R], datetime | None],
) -> list[R]:
    """The records matching ``spec``, ``where`` (called with the record) and ``at``
    (compared with ``when(record)``)."""
    _check_spec(spec)
    at = _check_at(at)
    found: list[R] = []
    for record in records:
        task = record.task
        if isinstance(spec, EverTask):
            if type(task) is not type(spec) or task != spec:
                continue
        elif spec is not None and not isinstance(task, spec):
            continue
        if at is not None and when(record) != at:
            continue
        if where is not None and not where(record):
            continue
        found.append(record)
    return found


def describe_spec(
    spec: TaskSpec | None, where: Callable[..., bool] | None, at: datetime | None
) -> str:
    """``SendEmail matching `where`, due at ...`` for messages."""
    if spec is None:
        text = "any task"
    elif isinstance(spec, EverTask):
        text = repr(spec)
    else:
        text = spec.__qualname__
    if where is not None:
        text += " matching `where`"
    if at is not None:
        text += f" due at {at.isoformat()}"
    return text


def listing(title: str, records: Sequence[_Record]) -> str:
    """A titled, numbered list of records (or a line saying there are none)."""
    if not records:
        return f"{title}: none."
    lines = [f"{title} ({len(records)}):"]
    lines += [f"  {n}. {r.describe()}" for n, r in enumerate(records, 1)]
    return "\n".join(lines)
