"""The root ``evertask`` group and the exit-code contract."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from evertask.version import __version__

from .codes import EXIT_FAILED, EXIT_OK
from .db import db
from .nodes import nodes
from .run import run
from .schedule import schedule
from .tasks import tasks

__all__ = ["cli", "run_cli"]

_EPILOG = """\b
Exit codes: 0 success; 1 the operation failed (task not found or not
cancellable, a factory error); 2 usage error (also a bad cron or schedule);
3 the storage cannot be used (bad URL, missing file or package, unreachable
database, tables not migrated); 130 `run` forced to exit by a further Ctrl-C.
See docs/cli.md."""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EPILOG,
)
@click.version_option(__version__, "--version", "-V", prog_name="evertask")
def cli() -> None:
    """EverTask: run worker nodes and manage their database, tasks and schedules."""


cli.add_command(run)
cli.add_command(db)
cli.add_command(tasks)
cli.add_command(nodes)
cli.add_command(schedule)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run ``cli`` and return its exit code (never raises SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args, prog_name="evertask", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_FAILED
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except SystemExit as done:  # (a callback's sys.exit)
        code = done.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    # a command returns None (or its exit code); --help and --version return 0
    return result if isinstance(result, int) else EXIT_OK
