"""The ``evertask`` command line: worker nodes, migrations, tasks, nodes and schedules.

Installed as the console script ``evertask`` (also ``python -m evertask.cli``); see
``docs/cli.md``. Importing this package imports neither click nor any storage: ``main``
loads them when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from .codes import EXIT_FAILED, EXIT_FORCED, EXIT_OK, EXIT_STORAGE, EXIT_USAGE

__all__ = ["EXIT_FAILED", "EXIT_FORCED", "EXIT_OK", "EXIT_STORAGE", "EXIT_USAGE", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    from .app import run_cli

    return run_cli(argv)
