"""The quick start of docs/testing.md runs as written (its three files, in a fresh pytest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.testing.test_plugin import plugin_args

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def quick_start_files() -> dict[str, str]:
    """The code blocks whose first line is ``# <file>.py``, by file name."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    files = {}
    for block in blocks:
        first, _, _ = block.partition("\n")
        if re.fullmatch(r"# \w+\.py", first):
            files[first[2:]] = block
    return files


def test_the_quick_start_passes(pytester: pytest.Pytester) -> None:
    files = quick_start_files()
    assert sorted(files) == ["conftest.py", "myapp.py", "test_signup.py"]
    for name, text in files.items():
        pytester.path.joinpath(name).write_text(text, encoding="utf-8")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.syspathinsert()
    result = pytester.runpytest(*plugin_args())
    result.assert_outcomes(passed=1)
