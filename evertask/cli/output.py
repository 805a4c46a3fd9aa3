"""Output: JSON for scripts (``--json``), rich tables for people."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["console", "echo_json", "format_time", "jsonable", "kv_table", "print_table"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: dataclasses become objects (snake_case keys), ids and times
    strings (ISO 8601), enums their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def console() -> Console:
    """A console on stdout; piped output gets a wide line so tables are not cut."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console(highlight=False)
    return Console(highlight=False, width=200)


def format_time(moment: datetime | None) -> str:
    """A UTC time to the second (``-`` when absent)."""
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    caption: str | None = None,
) -> None:
    """A table of ``rows`` (cells shown with ``str``; ``None`` as ``-``)."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in ("ID", "Id", "Node"))
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console().print(table)


def kv_table(title: str | None, pairs: Iterable[tuple[str, object]]) -> None:
    """A two-column table of field names and values."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("Field", style="bold", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for name, value in pairs:
        table.add_row(name, "-" if value is None else str(value))
    console().print(table)
