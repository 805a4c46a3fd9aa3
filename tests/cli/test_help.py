"""``evertask --help`` through the console script, every subcommand's help, the module form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import ROOT, evertask, invoke

COMMANDS = [
    ["run"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "current"],
    ["db", "sql"],
    ["tasks"],
    ["tasks", "list"],
    ["tasks", "show"],
    ["tasks", "cancel"],
    ["tasks", "retry"],
    ["nodes"],
    ["schedule"],
]


def test_help_through_the_console_script() -> None:
    done = evertask("--help")
    assert done.returncode == 0
    for name in ("run", "db", "tasks", "nodes", "schedule", "Exit codes"):
        assert name in done.stdout
    version = evertask("--version")
    assert version.returncode == 0 and version.stdout.startswith("evertask, version ")
    module = subprocess.run(
        [sys.executable, "-m", "evertask.cli", "-h"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 0 and module.stdout == done.stdout
    unknown = evertask("frobnicate")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command: list[str]) -> None:
    done = invoke(*command, "--help")
    assert done.returncode == 0
    assert f"Usage: evertask {' '.join(command)}" in done.stdout
