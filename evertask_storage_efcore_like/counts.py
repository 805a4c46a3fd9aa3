"""Counts that do not scan the history: finished rows from their hourly rollup, live
rows from their index.

The count triggers (:mod:`.count_triggers`) append a delta for every finished row that
appears, changes or goes. :class:`FoldCountsOp` moves deltas into ``TaskCounts`` (one
row per hour of creation, queue, status and recurring flag), taking each delta exactly
once: it deletes the deltas it sums (``DELETE ... RETURNING``, or on MySQL a locked
read and a delete of exactly those ids), in the transaction that adds them up.

A count is one statement over four parts, so it sees one snapshot of the database:

1. ``TaskCounts`` for the whole hours inside the range,
2. ``TaskCountDeltas`` not folded yet, for those hours,
3. the finished rows of the partial hours at the range's edges (by the status and
   creation-time index; at most two hours of rows),
4. the live rows (waiting, queued, running: few, by the same index).

So a count costs the same with a million finished rows as with none, and is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite

from evertask_abstractions import QueuedTaskStatus

from .count_triggers import FINISHED_STATUS_NAMES
from .ops import Op, Step, StepGen, StepMode
from .schema import TaskTables
from .types import UtcDateTime

__all__ = [
    "FOLD_BATCH",
    "LIVE_STATUS_NAMES",
    "CountFilter",
    "FoldCountsOp",
    "ceil_hour",
    "count_statements",
    "counts_statement",
    "floor_hour",
]

FOLD_BATCH = 500
"""Most deltas one fold transaction takes (a few milliseconds of work)."""

LIVE_STATUS_NAMES: tuple[str, ...] = tuple(
    sorted(s.value for s in QueuedTaskStatus if s.value not in FINISHED_STATUS_NAMES)
)
"""Statuses counted from the index of ``QueuedTasks`` (not kept by the triggers)."""

_HOUR = timedelta(hours=1)


def floor_hour(moment: datetime) -> datetime:
    """The start of ``moment``'s hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """The first hour start at or after ``moment``."""
    floor = floor_hour(moment)
    return floor if floor == moment else floor + _HOUR


@dataclass(frozen=True, slots=True)
class CountFilter:
    """Which tasks a count covers: creation in ``[since, until)``, one queue, recurring or
    not, some statuses (``None``: no restriction)."""

    since: datetime | None = None
    until: datetime | None = None
    queue_name: str | None = None
    is_recurring: bool | None = None
    statuses: frozenset[str] | None = None


def _bucket(column: Any, edges: Sequence[datetime] | None) -> Any:
    """The bucket index of ``column`` between consecutive ``edges`` (0 without edges)."""
    if not edges or len(edges) <= 2:
        return literal(0, Integer())
    whens = [(column < edges[i], i - 1) for i in range(1, len(edges) - 1)]
    return case(*whens, else_=len(edges) - 2)


def counts_statement(
    tables: TaskTables, where: CountFilter, edges: Sequence[datetime] | None = None
) -> Select[Any] | None:
    """``(Status, QueueName, IsRecurring, Bucket, N)`` rows summing to the counts.

    ``edges``, when given, split ``[edges[0], edges[-1])`` into buckets; the inner edges
    must be whole hours. ``None`` when no status can match.
    """
    if edges:
        for inner in edges[1:-1]:
            if floor_hour(inner) != inner:
                raise ValueError(f"Bucket edges must be whole hours, got {inner.isoformat()}.")
        where = CountFilter(
            edges[0], edges[-1], where.queue_name, where.is_recurring, where.statuses
        )
    wanted = where.statuses
    finished = [n for n in FINISHED_STATUS_NAMES if wanted is None or n in wanted]
    live = [n for n in LIVE_STATUS_NAMES if wanted is None or n in wanted]
    t, rollup, deltas = tables.tasks, tables.counts, tables.count_deltas
    since, until = where.since, where.until
    lo = ceil_hour(since) if since is not None else None
    hi = floor_hour(until) if until is not None else None
    whole_hours = lo is None or hi is None or lo < hi

    def common(table: Any) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if where.queue_name is not None:
            out.append(table.c.QueueName == where.queue_name)
        if where.is_recurring is not None:
            out.append(table.c.IsRecurring == where.is_recurring)
        return out

    def part(table: Any, time: Any, n: Any, conditions: list[ColumnElement[bool]]) -> Any:
        return select(
            table.c.Status.label("Status"),
            table.c.QueueName.label("QueueName"),
            table.c.IsRecurring.label("IsRecurring"),
            _bucket(time, edges).label("Bucket"),
            n.label("N"),
        ).where(*conditions, *common(table))

    parts: list[Any] = []
    if finished and whole_hours:
        for table, time, n in (
            (rollup, rollup.c.HourUtc, rollup.c.Count),
            (deltas, deltas.c.CreatedAtUtc, deltas.c.Delta),
        ):
            bounds: list[ColumnElement[bool]] = [table.c.Status.in_(finished)]
            if lo is not None:
                bounds.append(time >= lo)
            if hi is not None:
                bounds.append(time < hi)
            parts.append(part(table, time, n, bounds))
    if finished:
        created = t.c.CreatedAtUtc
        edge_ranges: list[ColumnElement[bool]] = []
        if not whole_hours:
            assert since is not None and until is not None
            edge_ranges.append(and_(created >= since, created < until))
        else:
            if since is not None and lo is not None and since < lo:
                edge_ranges.append(and_(created >= since, created < lo))
            if until is not None and hi is not None and hi < until:
                edge_ranges.append(and_(created >= hi, created < until))
        if edge_ranges:
            parts.append(
                part(
                    t, created, literal(1, Integer()), [t.c.Status.in_(finished), or_(*edge_ranges)]
                )
            )
    if live:
        is_live: ColumnElement[bool] = t.c.Status.in_(live)
        if tables.dialect == "sqlite":
            # once ANALYZE has run, SQLite's planner expects each status to hold an equal
            # share of the table and scans all of it; the live rows are few, so say so
            is_live = func.unlikely(is_live)
        bounds = [is_live]
        if since is not None:
            bounds.append(t.c.CreatedAtUtc >= since)
        if until is not None:
            bounds.append(t.c.CreatedAtUtc < until)
        parts.append(part(t, t.c.CreatedAtUtc, literal(1, Integer()), bounds))
    if not parts:
        return None
    rows = union_all(*parts).subquery("counted")
    return select(
        rows.c.Status, rows.c.QueueName, rows.c.IsRecurring, rows.c.Bucket, func.sum(rows.c.N)
    ).group_by(rows.c.Status, rows.c.QueueName, rows.c.IsRecurring, rows.c.Bucket)


# -- folding --------------------------------------------------------------------------------


def count_statements(tables: TaskTables) -> dict[str, Any]:
    """The fold's statements by step name."""
    d, c = tables.count_deltas, tables.counts
    take = bindparam("take", type_=Integer())
    ids = select(d.c.Id).order_by(d.c.Id).limit(take)
    picked = (d.c.Id, d.c.CreatedAtUtc, d.c.QueueName, d.c.IsRecurring, d.c.Status, d.c.Delta)
    key = and_(
        c.c.HourUtc == bindparam("hour", type_=UtcDateTime()),
        c.c.QueueName == bindparam("queue"),
        c.c.Status == bindparam("status"),
        c.c.IsRecurring == bindparam("recurring"),
    )
    values = {
        "HourUtc": bindparam("hour", type_=UtcDateTime()),
        "QueueName": bindparam("queue"),
        "Status": bindparam("status"),
        "IsRecurring": bindparam("recurring"),
        "Count": bindparam("n", type_=Integer()),
    }
    out: dict[str, Any] = {
        "add_count": update(c).where(key).values(Count=c.c.Count + bindparam("n", type_=Integer())),
        "insert_count": _insert_or_add(tables, values),
        "delete_empty_count": delete(c).where(key, c.c.Count == 0),
        "any_count_delta": select(d.c.Id).order_by(d.c.Id).limit(1),
    }
    if tables.dialect in ("mysql", "mariadb"):
        # no DELETE ... RETURNING on MySQL: lock the rows read (skipping another
        # folder's), then delete exactly those ids
        out["select_count_deltas"] = (
            select(*picked).order_by(d.c.Id).limit(take).with_for_update(skip_locked=True)
        )
        out["delete_count_deltas"] = delete(d).where(d.c.Id.in_(bindparam("ids", expanding=True)))
    else:
        if tables.dialect == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        # the derived table also suits SQL Server (no LIMIT inside IN there either)
        batch = ids.subquery("batch")
        out["claim_count_deltas"] = (
            delete(d).where(d.c.Id.in_(select(batch.c.Id))).returning(*picked)
        )
    return out


def _insert_or_add(tables: TaskTables, values: dict[str, Any]) -> Any:
    """Insert a counter row; where the database has an upsert, one that another folder
    created meanwhile gets the count added instead (SQL Server: the fold retries)."""
    c = tables.counts
    dialect = tables.dialect
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        upsert = module.insert(c).values(**values)
        return upsert.on_conflict_do_update(
            index_elements=[c.c.HourUtc, c.c.QueueName, c.c.Status, c.c.IsRecurring],
            set_={"Count": c.c.Count + upsert.excluded.Count},
        )
    if dialect in ("mysql", "mariadb"):
        upsert = mysql.insert(c).values(**values)
        return upsert.on_duplicate_key_update(Count=c.c.Count + upsert.inserted.Count)
    return insert(c).values(**values)


def _hour_of(value: Any) -> datetime:
    """The hour of a delta's creation time, as the driver returned it (SQLite: text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value[:13] + ":00:00")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return floor_hour(value.astimezone(UTC))


def _hour_key(value: Any) -> Any:
    """A key equal for the creation times of one hour, cheaper than :func:`_hour_of` (which
    runs once per distinct key): the text's hour prefix, a UTC or naive time's hour."""
    if isinstance(value, str):
        return value[:13]
    if value.tzinfo is None or value.tzinfo is UTC:
        return value.replace(minute=0, second=0, microsecond=0)
    return _hour_of(value)


@dataclass(slots=True)
class FoldCountsOp(Op):
    """Fold up to ``take`` deltas into ``TaskCounts``; returns how many were folded."""

    take: int
    locked_read: bool  # MySQL: select-for-update and delete by ids

    heavy = True

    def steps(self) -> StepGen:
        params = {"take": self.take}
        if self.locked_read:
            rows = yield Step("select_count_deltas", params, StepMode.ROWS)
            if rows:
                yield Step("delete_count_deltas", {"ids": [r[0] for r in rows]})
        else:
            rows = yield Step("claim_count_deltas", params, StepMode.ROWS)
        if not rows:
            return 0
        by_key: dict[tuple[Any, str, Any, str], int] = {}  # hundreds of rows, a few keys
        for _id, created, queue, recurring, status, delta in rows:
            key = (_hour_key(created), queue, recurring, status)
            by_key[key] = by_key.get(key, 0) + delta
        sums: dict[tuple[datetime, str, bool, str], int] = {}
        for (hour, queue, recurring, status), n in by_key.items():
            key = (_hour_of(hour), queue, bool(recurring), status)
            sums[key] = sums.get(key, 0) + int(n)
        for (hour, queue, recurring, status), n in sorted(sums.items()):  # one lock order
            if n == 0:
                continue
            row = {"hour": hour, "queue": queue, "status": status, "recurring": recurring}
            changed = yield Step("add_count", {**row, "n": n})
            if not changed:
                yield Step("insert_count", {**row, "n": n})
            elif n < 0:
                yield Step("delete_empty_count", row)
        return len(rows)
