"""The set-based hot statement of PostgreSQL: one statement, one round trip per batch.

Every column of every kind of hot write travels as one array (``unnest``): new rows,
status transitions, compare-and-sets to Queued and captured logs. Writable CTEs update
the rows and insert their audit rows in the same statement, which, being a single
statement, commits atomically without an explicit transaction.

All sub-statements of one statement see the same snapshot and must not touch the same
row twice; the executor only combines writes to distinct task ids and keys.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from evertask_storage_efcore_like.schema import TaskTables, recovery_index_predicate
from evertask_storage_efcore_like.statements import TASK_COLUMNS

__all__ = ["PostgresSql"]

_ARRAY_TYPES = {
    "Id": "uuid",
    "CreatedAtUtc": "timestamptz",
    "LastExecutionUtc": "timestamptz",
    "ExecutionTimeMs": "float8",
    "ScheduledExecutionUtc": "timestamptz",
    "IsRecurring": "bool",
    "CurrentRunCount": "int4",
    "MaxRuns": "int4",
    "RunUntil": "timestamptz",
    "NextRunUtc": "timestamptz",
    "AuditLevel": "int4",
    "RecoveryDispatchFailureCount": "int4",
    "RetriedFrom": "uuid",
    "OwnerNode": "uuid",
    "ParentTaskId": "uuid",
    "BatchId": "uuid",
    "WorkflowId": "uuid",
}

TRANSITION_FOUND = 1
"""Result kind: a transition's row exists."""
QUEUED = 2
"""Result kind: a compare-and-set moved the row to Queued."""
TRANSITION_MEMBER = 3
"""Result kind: a transition's row counts in a batch or workflow and was not counted yet."""


PERSIST, TRANSITION, COMPARE_AND_SET, LOGS, AUDITS, PRIOR = 1, 2, 4, 8, 16, 32
"""Parts of a batch statement (bit flags); ``AUDITS``: some write of the batch is audited;
``PRIOR``: some transition also carries the audit row of an InProgress write it replaced."""


class _Arrays:
    def __init__(self) -> None:
        self.count = 0

    def unnest(self, alias: str, types: list[str], names: list[str]) -> str:
        args = ", ".join(f"${self.count + i}::{t}[]" for i, t in enumerate(types, start=1))
        self.count += len(types)
        return f"{alias} AS (SELECT * FROM unnest({args}) AS {alias}({', '.join(names)}))"


class PostgresSql:
    """The batch statements for one schema, one per combination of parts.

    A statement made of the parts ``PERSIST | TRANSITION | COMPARE_AND_SET | LOGS`` (in
    that order) takes, per part present: the 27 ``QueuedTasks`` columns of new rows plus
    their audit times; transitions (id, status, exception, stamp, ms, clear_next, audit
    time, result); compare-and-sets (id, now, audit time, owner: NULL or the node that must own
    the row); logs (id, task id, time, level,
    message, exception, sequence). It returns ``(kind, id)`` rows, kind
    :data:`TRANSITION_FOUND`, :data:`TRANSITION_MEMBER` or :data:`QUEUED`. Statements hold
    only the parts a batch needs (the audit inserts only with ``AUDITS``).
    """

    def __init__(self, tables: TaskTables, dialect: Dialect | None = None) -> None:
        dialect = dialect or postgresql.dialect()  # type: ignore[no-untyped-call]
        q = dialect.identifier_preparer
        self.quote = q.quote
        """Quotes an identifier (where needed) as the statements do."""
        self._tasks = q.format_table(tables.tasks)
        self._audit = q.format_table(tables.status_audit)
        self._logs = q.format_table(tables.logs)
        self._columns = [q.quote(c) for c in TASK_COLUMNS]
        self._types = [_ARRAY_TYPES.get(c, "text") for c in TASK_COLUMNS]
        self._statuses = str(
            recovery_index_predicate(tables.tasks.alias("q"), tables.dialect).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
        )
        self._cache: dict[int, str] = {}
        self.parents_with_waiting_children = (
            f'SELECT DISTINCT "ParentTaskId" FROM {self._tasks} '
            'WHERE "ParentTaskId" = ANY($1::uuid[]) AND "Status" = \'WaitingParent\''
        )
        """Which of the parents ``$1`` have continuations waiting for them (a seek of the
        partial index of rows with a parent, per parent)."""

    def batch(self, parts: int) -> str:
        """The statement made of ``parts`` (a combination of the flags with a write part)."""
        found = self._cache.get(parts)
        if found is None:
            found = self._cache[parts] = self._build(parts)
        return found

    def _build(self, parts: int) -> str:
        needs = TRANSITION | AUDITS  # what a PRIOR part goes with
        if parts & 15 == 0 or parts >= 64 or (parts & PRIOR and parts & needs != needs):
            raise ValueError(f"Invalid batch parts {parts}.")
        audited = bool(parts & AUDITS)
        tasks, audit, columns = self._tasks, self._audit, self._columns
        audit_cols = '("QueuedTaskId", "UpdatedAtUtc", "NewStatus", "Exception")'
        a = _Arrays()
        ctes: list[str] = []
        results: list[str] = []
        if parts & PERSIST:
            ctes += [
                a.unnest("p", [*self._types, "timestamptz"], [*columns, "audit_ts"]),
                f"p_ins AS (INSERT INTO {tasks} ({', '.join(columns)}) "
                f"SELECT {', '.join('p.' + c for c in columns)} FROM p)",
            ]
            if audited:
                ctes.append(
                    f"p_aud AS (INSERT INTO {audit} {audit_cols} "
                    'SELECT p."Id", p.audit_ts, p."Status", p."Exception" FROM p '
                    "WHERE p.audit_ts IS NOT NULL)"
                )
        if parts & TRANSITION:
            prior = bool(parts & PRIOR)
            ctes += [
                a.unnest(
                    "t",
                    ["uuid", "text", "text", "timestamptz", "float8", "bool", "timestamptz"]
                    + ["text"]
                    + ["timestamptz"] * prior,
                    ["id", "status", "exc", "stamp", "ms", "clear_next", "audit_ts"]
                    + ["result"]
                    + ["prior_ts"] * prior,
                ),
                f"t_upd AS (UPDATE {tasks} AS q SET "
                '"Status" = t.status, "Exception" = t.exc, '
                '"LastExecutionUtc" = COALESCE(t.stamp, q."LastExecutionUtc"), '
                '"ExecutionTimeMs" = COALESCE(t.ms, q."ExecutionTimeMs"), '
                '"NextRunUtc" = CASE WHEN t.clear_next THEN NULL ELSE q."NextRunUtc" END, '
                '"Result" = COALESCE(t.result, q."Result") '
                'FROM t WHERE q."Id" = t.id RETURNING q."Id", (NOT q."BatchCounted" AND '
                '(q."BatchId" IS NOT NULL OR q."WorkflowId" IS NOT NULL)) AS member'
                + (", t.status, t.exc, t.audit_ts" if audited else "")
                + (", t.prior_ts" if prior else "")
                + ")",
            ]
            # the audit rows come from the updated rows themselves (RETURNING): no part
            # joins two of the statement's row sets, whose sizes the planner cannot know
            if prior:  # the replaced InProgress row first: audits are read in Id order
                ctes.append(
                    f"t_aud AS (INSERT INTO {audit} {audit_cols} "
                    'SELECT u."Id", v.ts, v.status, v.exc FROM t_upd AS u CROSS JOIN LATERAL '
                    "(VALUES (0, u.prior_ts, 'InProgress', NULL::text), "
                    "(1, u.audit_ts, u.status, u.exc)) AS v(k, ts, status, exc) "
                    'WHERE v.ts IS NOT NULL ORDER BY u."Id", v.k)'
                )
            elif audited:
                ctes.append(
                    f"t_aud AS (INSERT INTO {audit} {audit_cols} "
                    'SELECT u."Id", u.audit_ts, u.status, u.exc FROM t_upd AS u '
                    "WHERE u.audit_ts IS NOT NULL)"
                )
            results.append(f'SELECT {TRANSITION_FOUND}, "Id" FROM t_upd')
            results.append(f'SELECT {TRANSITION_MEMBER}, "Id" FROM t_upd WHERE member')
        if parts & COMPARE_AND_SET:
            ctes += [
                a.unnest(
                    "c",
                    ["uuid", "timestamptz", "timestamptz", "uuid"],
                    ["id", "now", "audit_ts", "owner"],
                ),
                f'c_upd AS (UPDATE {tasks} AS q SET "Status" = \'Queued\', "Exception" = NULL '
                'FROM c WHERE q."Id" = c.id '
                'AND (q."MaxRuns" IS NULL OR COALESCE(q."CurrentRunCount", 0) < q."MaxRuns") '
                'AND (q."RunUntil" IS NULL OR q."RunUntil" >= c.now) '
                f"AND ({self._statuses}) "
                'AND (c.owner IS NULL OR q."OwnerNode" = c.owner) RETURNING q."Id"'
                + (", c.audit_ts" if audited else "")
                + ")",
            ]
            if audited:
                ctes.append(
                    f"c_aud AS (INSERT INTO {audit} {audit_cols} "
                    "SELECT u.\"Id\", u.audit_ts, 'Queued', NULL FROM c_upd AS u "
                    "WHERE u.audit_ts IS NOT NULL)"
                )
            results.append(f'SELECT {QUEUED}, "Id" FROM c_upd')
        if parts & LOGS:
            ctes += [
                a.unnest(
                    "l",
                    ["uuid", "uuid", "timestamptz", "text", "text", "text", "int4"],
                    ["log_id", "id", "ts", "level", "message", "exc", "seq"],
                ),
                f"l_ins AS (INSERT INTO {self._logs} "
                '("Id", "TaskId", "TimestampUtc", "Level", "Message", "ExceptionDetails", '
                '"SequenceNumber") SELECT l.log_id, l.id, l.ts, l.level, l.message, l.exc, l.seq '
                f'FROM l WHERE EXISTS (SELECT 1 FROM {tasks} AS q WHERE q."Id" = l.id))',
            ]
        tail = " UNION ALL ".join(results) if results else "SELECT 0, NULL::uuid WHERE false"
        return "WITH " + ", ".join(ctes) + " " + tail
