"""Core statements compiled once into a driver's own SQL and argument order.

The hot write paths of the SQLite and PostgreSQL executors talk to the DB-API driver
directly (sqlite3 in aiosqlite's thread, asyncpg). Compiling each statement once, with
SQLAlchemy's own bind processors for the values, keeps the statements dialect-neutral
Core and the per-call cost at one tuple build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Precompiled", "PrecompiledCache"]

_MISSING = object()


class Precompiled:
    """One statement as positional SQL for a dialect (qmark or numeric-dollar style)."""

    __slots__ = ("_plan", "names", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        names = compiled.positiontup
        if names is None:
            raise ValueError(
                f"Dialect {dialect.name}+{dialect.driver} does not use a positional "
                "paramstyle; run this statement through SQLAlchemy instead."
            )
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(names)
        plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in self.names:
            bind = compiled.binds[name]
            default = _MISSING if bind.required else bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            plan.append((name, default, processor))
        self._plan = tuple(plan)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for ``params`` (names as in the Core statement)."""
        out: list[Any] = []
        for name, default, processor in self._plan:
            value = params.get(name, default)
            if value is _MISSING:
                raise KeyError(f"Missing bind parameter {name!r} for: {self.sql}")
            out.append(value if processor is None or value is None else processor(value))
        return tuple(out)


class PrecompiledCache:
    """Lazily precompiled statements of a :class:`~.statements.Statements` by name."""

    def __init__(self, statements: object, dialect: Dialect) -> None:
        self._statements = statements
        self._dialect = dialect
        self._cache: dict[str, Precompiled] = {}

    def __getitem__(self, name: str) -> Precompiled:
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = Precompiled(getattr(self._statements, name), self._dialect)
        return found
