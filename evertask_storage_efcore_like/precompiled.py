"""Core statements compiled once into a driver's own SQL and argument order.

The hot write paths of the SQLite and PostgreSQL executors talk to the DB-API driver
directly (sqlite3 in aiosqlite's thread, asyncpg). Compiling each statement once, with
SQLAlchemy's own bind processors for the values, keeps the statements dialect-neutral
Core and the per-call cost at one tuple build.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Precompiled", "PrecompiledCache"]


class Precompiled:
    """One statement as positional SQL for a dialect (qmark or numeric-dollar style)."""

    __slots__ = ("_defaults", "_processed", "_values", "names", "sql")

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
        defaults: dict[str, Any] = {}
        processed: list[tuple[int, Callable[[Any], Any]]] = []
        for position, name in enumerate(self.names):
            bind = compiled.binds[name]
            if not bind.required:
                defaults[name] = bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processed.append((position, processor))
        self._defaults = defaults
        self._processed = tuple(processed)
        self._values = _tupled(operator.itemgetter, self.names)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for ``params`` (names as in the Core statement)."""
        if self._defaults:
            params = {**self._defaults, **params}
        try:
            values = self._values(params)
        except KeyError as error:
            raise KeyError(f"Missing bind parameter {error.args[0]!r} for: {self.sql}") from None
        return self._convert(values)

    def reader(self, attributes: Mapping[str, str]) -> Callable[[Any], tuple[Any, ...]]:
        """The positional arguments read straight off an object: ``attributes`` names, for
        each bind parameter, the attribute (or dotted path) holding its value.

        The same tuple as :meth:`args` of a mapping of those values, without building
        the mapping (the SQLite writer's new rows and status writes: a declared fast
        path, its tests compare both)."""
        missing = [name for name in self.names if name not in attributes]
        if missing:
            raise ValueError(f"No attribute for the bind parameters {missing} of: {self.sql}")
        get = _tupled(operator.attrgetter, tuple(attributes[name] for name in self.names))
        convert = self._convert
        return lambda source: convert(get(source))

    def _convert(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """``values`` through the bind processors of their columns (``None`` stays)."""
        if not self._processed:
            return values
        out = list(values)
        for position, processor in self._processed:
            value = out[position]
            if value is not None:
                out[position] = processor(value)
        return tuple(out)


def _tupled(
    make: Callable[..., Callable[[Any], Any]], keys: tuple[str, ...]
) -> Callable[[Any], tuple[Any, ...]]:
    """The values at ``keys`` as a tuple, in one C call: ``make`` is
    ``operator.itemgetter`` (of a mapping) or ``operator.attrgetter`` (of an object),
    which return a bare value for one key."""
    if len(keys) > 1:
        return make(*keys)
    if keys:
        get = make(keys[0])
        return lambda source: (get(source),)
    return lambda source: ()


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
