"""The exit codes of the ``evertask`` command line (documented in docs/cli.md)."""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "EXIT_FORCED", "EXIT_OK", "EXIT_STORAGE", "EXIT_USAGE"]

EXIT_OK = 0
"""The command did what it was asked (``run``: the node stopped gracefully)."""
EXIT_FAILED = 1
"""The operation failed: a task not found or not in a state for the action, a factory
that raised or returned something else than a builder or host."""
EXIT_USAGE = 2
"""The command line is wrong: an unknown option, a missing argument, a bad value (a cron
expression or ``--python`` schedule that does not parse, an unknown MODULE:FACTORY)."""
EXIT_STORAGE = 3
"""The storage cannot be used: a bad URL, a missing file or storage package, an unreachable
database, tables at another migration."""
EXIT_FORCED = 130
"""``run`` was stopped by a further Ctrl-C without finishing its stop (128 + SIGINT)."""
