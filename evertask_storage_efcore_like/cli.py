"""Command line: ``python -m evertask_storage_efcore_like sql --dialect D [--schema S]``.

Prints the migration SQL (Alembic offline mode) for a DBA to review and apply; then
configure the storage with ``auto_apply_migrations=False``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evertask_abstractions import ConfigurationError

from .migrate import DIALECTS, head_revision, migration_sql

__all__ = ["DEFAULT_SCHEMAS", "main"]

DEFAULT_SCHEMAS: dict[str, str] = {"postgresql": "evertask", "mssql": "EverTask"}
"""The schema each storage uses unless configured (the others have no schemas); the
script targets it when ``--schema`` is not given."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evertask_storage_efcore_like",
        description="EverTask storage tools.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sql = commands.add_parser(
        "sql", help="print the SQL that creates or upgrades the EverTask tables"
    )
    sql.add_argument("--dialect", required=True, choices=DIALECTS, help="target database")
    sql.add_argument(
        "--schema",
        default=None,
        help=(
            "schema holding the tables, as configured on the storage (default: the storage's "
            "default, PostgreSQL: evertask, SQL Server: EverTask; '' for the connection's "
            "default schema, SQL Server: dbo; MySQL and SQLite have none)"
        ),
    )
    sql.add_argument(
        "--from",
        dest="from_revision",
        default=None,
        help="the revision the database is at (default: an empty database)",
    )
    sql.add_argument("--to", dest="to_revision", default="head", help="target revision")
    commands.add_parser("head", help="print the newest migration revision")
    return parser


def _schema(dialect: str, given: str | None) -> str | None:
    """The storage's schema for ``--schema`` (``None``: not given; ``""``: the default)."""
    if given is None:
        return DEFAULT_SCHEMAS.get(dialect)
    if given == "" and dialect == "mssql":
        return "dbo"  # what SqlServerTaskStorage(schema="") uses
    return given


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "head":
        print(head_revision())
        return 0
    schema = _schema(args.dialect, args.schema)
    try:
        text = migration_sql(
            args.dialect,
            schema,
            from_revision=args.from_revision,
            to_revision=args.to_revision,
        )
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
