"""The persisted exception text: type, message, traceback, causes and attempt history."""

from __future__ import annotations

import traceback

__all__ = ["format_exception"]


def format_exception(
    exc: BaseException, previous_attempts: list[BaseException] | None = None
) -> str:
    """Render ``exc`` as stored in the ``exception`` column.

    The text starts with ``"<module.Type>: <message>"`` followed by the full traceback
    (including chained causes); earlier failed attempts of the same run follow, one line each.
    """
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    head = f"{name}: {exc}"
    body = "".join(traceback.format_exception(exc)).rstrip()
    text = f"{head}\n{body}"
    if previous_attempts:
        lines = [
            f"  attempt {i}: {type(e).__qualname__}: {e}"
            for i, e in enumerate(previous_attempts, 1)
        ]
        text += "\nPrevious attempts:\n" + "\n".join(lines)
    return text
