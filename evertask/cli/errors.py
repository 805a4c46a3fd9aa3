"""The error a command raises to end with a message and one of the documented exit codes."""

from __future__ import annotations

import click

from .codes import EXIT_FAILED, EXIT_STORAGE

__all__ = ["CliError", "StorageError"]


class CliError(click.ClickException):
    """Ends the command: ``Error: message`` on stderr and ``exit_code`` (default 1)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # (click: a class default)


class StorageError(CliError):
    """The storage cannot be used (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_STORAGE)
