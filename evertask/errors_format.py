"""The persisted exception text: type, message, traceback, causes and attempt history."""

from __future__ import annotations

import traceback

__all__ = ["format_exception"]

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception(
    exc: BaseException, previous_attempts: list[BaseException] | None = None
) -> str:
    """Render ``exc`` as stored in the ``exception`` column.

    The text starts with ``"<module.Type>: <message>"``. A single attempt follows with its
    full traceback (including chained causes). After retries, every attempt follows in
    order, each with its own traceback: ``"Attempt 1 of 3: ..."`` up to
    ``"Attempt 3 of 3 (final): ..."``; an attempt's chain stops where it would reach
    another attempt's error (they are separate failures, not raised while handling each
    other).
    """
    head = f"{_name(exc)}: {exc}"
    if not previous_attempts:
        body = "".join(traceback.format_exception(exc)).rstrip()
        return f"{head}\n{body}"
    attempts = [*previous_attempts, exc]
    total = len(attempts)
    sections = [f"{head}\nFailed after {total} attempts."]
    for number, error in enumerate(attempts, 1):
        final = " (final)" if number == total else ""
        sections.append(
            f"Attempt {number} of {total}{final}: {_name(error)}: {error}\n"
            + _render(error, attempts)
        )
    return "\n\n".join(sections)


def _name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _render(exc: BaseException, attempts: list[BaseException]) -> str:
    """``exc`` with its traceback and chain, the chain stopping at any other attempt."""
    parts: list[str] = []
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        parts.append("".join(traceback.format_exception(link, chain=False)))
        if link.__cause__ is not None:
            following, separator = link.__cause__, _CAUSE
        elif link.__context__ is not None and not link.__suppress_context__:
            following, separator = link.__context__, _CONTEXT
        else:
            break
        if any(following is a for a in attempts):
            break
        parts.append(separator)
        link = following
    return "".join(reversed(parts)).rstrip()
