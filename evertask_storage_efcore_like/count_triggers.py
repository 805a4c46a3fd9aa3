"""The triggers that keep the history's counts: DDL per dialect.

Every row of ``QueuedTasks`` that enters a finished status (Completed, Failed,
Cancelled) appends a ``+1`` to ``TaskCountDeltas``; one that leaves it (a retry that
revives it, a recurring run starting again, a delete) appends a ``-1``. The triggers
run in the transaction of the write they describe, so the counts are exact whatever
writes the rows (this library, several nodes, an operator's SQL). A delta is only an
insert: concurrent writers never wait for one another on a counter row.

Only finished statuses are kept this way; the live ones (waiting, queued, running) are
few and are counted from their index when asked.
"""

from __future__ import annotations

from evertask_abstractions import QueuedTaskStatus

__all__ = ["FINISHED_STATUS_NAMES", "TRIGGER_NAMES", "create_count_triggers", "drop_count_triggers"]

FINISHED_STATUS_NAMES: tuple[str, ...] = tuple(
    sorted(
        s.value
        for s in (QueuedTaskStatus.COMPLETED, QueuedTaskStatus.FAILED, QueuedTaskStatus.CANCELLED)
    )
)
"""The statuses whose rows are counted by the triggers (alphabetical)."""

TRIGGER_NAMES = (
    "TR_QueuedTasks_Counts_Insert",
    "TR_QueuedTasks_Counts_Update",
    "TR_QueuedTasks_Counts_Delete",
)
_PG_FUNCTION = "evertask_count_deltas"
_MSSQL_TRIGGER = "TR_QueuedTasks_Counts"
_COLUMNS = ("CreatedAtUtc", "QueueName", "IsRecurring", "Status")
_KEY = ("Status", "QueueName", "IsRecurring", "CreatedAtUtc")


def _q(dialect: str, name: str) -> str:
    if dialect in ("mysql", "mariadb"):
        return f"`{name}`"
    if dialect == "mssql":
        return f"[{name}]"
    return f'"{name}"'


def _table(dialect: str, schema: str | None, name: str) -> str:
    return f"{_q(dialect, schema)}.{_q(dialect, name)}" if schema else _q(dialect, name)


def _finished(dialect: str, row: str) -> str:
    status = f"{row}.{_q(dialect, 'Status')}"
    if dialect == "sqlite":  # an IN list builds a small index at every run of a trigger
        return "(" + " OR ".join(f"{status} = '{n}'" for n in FINISHED_STATUS_NAMES) + ")"
    names = ", ".join(f"'{n}'" for n in FINISHED_STATUS_NAMES)
    return f"{status} IN ({names})"


def _insert(dialect: str, deltas: str, row: str, delta: int) -> str:
    columns = ", ".join(_q(dialect, c) for c in (*_COLUMNS, "Delta"))
    values = ", ".join(f"{row}.{_q(dialect, c)}" for c in _COLUMNS)
    return f"INSERT INTO {deltas} ({columns}) VALUES ({values}, {delta})"


def _insert_if_finished(dialect: str, deltas: str, row: str, delta: int) -> str:
    """SQLite: the insert as ``INSERT ... SELECT ... WHERE`` (a trigger body has no IF)."""
    columns = ", ".join(_q(dialect, c) for c in (*_COLUMNS, "Delta"))
    values = ", ".join(f"{row}.{_q(dialect, c)}" for c in _COLUMNS)
    return (
        f"INSERT INTO {deltas} ({columns}) SELECT {values}, {delta} WHERE {_finished(dialect, row)}"
    )


def _changed(dialect: str) -> str:
    """Whether a counted column differs between OLD and NEW (NULL-safe)."""
    if dialect == "postgresql":
        old = ", ".join(f"OLD.{_q(dialect, c)}" for c in _KEY)
        new = ", ".join(f"NEW.{_q(dialect, c)}" for c in _KEY)
        return f"({old}) IS DISTINCT FROM ({new})"
    if dialect == "sqlite":
        return " OR ".join(f"OLD.{_q(dialect, c)} IS NOT NEW.{_q(dialect, c)}" for c in _KEY)
    return " OR ".join(f"NOT (OLD.{_q(dialect, c)} <=> NEW.{_q(dialect, c)})" for c in _KEY)


def create_count_triggers(dialect: str, schema: str | None = None) -> list[str]:
    """The statements creating the count triggers on ``dialect`` (one string each)."""
    tasks = _table(dialect, schema, "QueuedTasks")
    deltas = _table(dialect, schema, "TaskCountDeltas")
    if dialect == "sqlite":
        ins, upd, dele = (_q(dialect, n) for n in TRIGGER_NAMES)
        watched = ", ".join(_q(dialect, c) for c in _KEY)
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {tasks} WHEN {_finished(dialect, 'NEW')} "
            f"BEGIN {_insert(dialect, deltas, 'NEW', 1)}; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE OF {watched} ON {tasks} "
            f"WHEN ({_finished(dialect, 'OLD')} OR {_finished(dialect, 'NEW')}) "
            f"AND ({_changed(dialect)}) BEGIN "
            f"{_insert_if_finished(dialect, deltas, 'OLD', -1)}; "
            f"{_insert_if_finished(dialect, deltas, 'NEW', 1)}; END",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {tasks} WHEN {_finished(dialect, 'OLD')} "
            f"BEGIN {_insert(dialect, deltas, 'OLD', -1)}; END",
        ]
    if dialect == "postgresql":
        function = _table(dialect, schema, _PG_FUNCTION)
        ins, upd, dele = (_q(dialect, n) for n in TRIGGER_NAMES)
        return [
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP <> 'INSERT' AND {_finished(dialect, 'OLD')} THEN\n"
            f"    {_insert(dialect, deltas, 'OLD', -1)};\n"
            "  END IF;\n"
            f"  IF TG_OP <> 'DELETE' AND {_finished(dialect, 'NEW')} THEN\n"
            f"    {_insert(dialect, deltas, 'NEW', 1)};\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END\n$$",
            f"CREATE TRIGGER {ins} AFTER INSERT ON {tasks} FOR EACH ROW "
            f"WHEN ({_finished(dialect, 'NEW')}) EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {tasks} FOR EACH ROW "
            f"WHEN (({_finished(dialect, 'OLD')} OR {_finished(dialect, 'NEW')}) "
            f"AND {_changed(dialect)}) EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {tasks} FOR EACH ROW "
            f"WHEN ({_finished(dialect, 'OLD')}) EXECUTE FUNCTION {function}()",
        ]
    if dialect in ("mysql", "mariadb"):
        ins, upd, dele = (_q(dialect, n) for n in TRIGGER_NAMES)
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {tasks} FOR EACH ROW BEGIN "
            f"IF {_finished(dialect, 'NEW')} THEN {_insert(dialect, deltas, 'NEW', 1)}; "
            "END IF; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {tasks} FOR EACH ROW BEGIN "
            f"IF {_changed(dialect)} THEN "
            f"IF {_finished(dialect, 'OLD')} THEN {_insert(dialect, deltas, 'OLD', -1)}; "
            "END IF; "
            f"IF {_finished(dialect, 'NEW')} THEN {_insert(dialect, deltas, 'NEW', 1)}; "
            "END IF; END IF; END",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {tasks} FOR EACH ROW BEGIN "
            f"IF {_finished(dialect, 'OLD')} THEN {_insert(dialect, deltas, 'OLD', -1)}; "
            "END IF; END",
        ]
    if dialect == "mssql":
        trigger = _table(dialect, schema, _MSSQL_TRIGGER)
        columns = ", ".join(_q(dialect, c) for c in (*_COLUMNS, "Delta"))

        def side(alias: str, other: str, delta: int) -> str:
            picked = ", ".join(f"{alias}.{_q(dialect, c)}" for c in _COLUMNS)
            same = " AND ".join(
                f"{other}.{_q(dialect, c)} = {alias}.{_q(dialect, c)}" for c in _KEY
            )
            source = "deleted" if delta < 0 else "inserted"
            counterpart = "inserted" if delta < 0 else "deleted"
            return (
                f"SELECT {picked}, {delta} FROM {source} AS {alias} "
                f"WHERE {_finished(dialect, alias)} AND NOT EXISTS (SELECT 1 FROM "
                f"{counterpart} AS {other} WHERE {other}.[Id] = {alias}.[Id] AND {same})"
            )

        return [
            f"CREATE TRIGGER {trigger} ON {tasks} AFTER INSERT, UPDATE, DELETE AS\n"
            "BEGIN\n"
            "  SET NOCOUNT ON;\n"
            f"  INSERT INTO {deltas} ({columns})\n"
            f"  {side('d', 'i', -1)}\n"
            "  UNION ALL\n"
            f"  {side('i', 'd', 1)};\n"
            "END"
        ]
    raise ValueError(f"No count triggers for the {dialect!r} dialect.")


def drop_count_triggers(dialect: str, schema: str | None = None) -> list[str]:
    """The statements dropping what :func:`create_count_triggers` created."""
    tasks = _table(dialect, schema, "QueuedTasks")
    if dialect == "mssql":
        return [f"DROP TRIGGER {_table(dialect, schema, _MSSQL_TRIGGER)}"]
    if dialect == "postgresql":
        drops = [f"DROP TRIGGER {_q(dialect, n)} ON {tasks}" for n in TRIGGER_NAMES]
        return [*drops, f"DROP FUNCTION {_table(dialect, schema, _PG_FUNCTION)}()"]
    return [f"DROP TRIGGER {_table(dialect, schema, n)}" for n in TRIGGER_NAMES]
