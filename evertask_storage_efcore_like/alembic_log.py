"""Keep Alembic quiet while EverTask migrates.

Alembic logs at INFO when it is imported ("setup plugin ...") and on every run ("Context
impl ...", "Will assume non-transactional DDL", "Running upgrade ..."): noise in an
application's log at each start. Inside :func:`quiet_alembic` those records are dropped on
the current thread (other threads' Alembic runs are untouched; warnings always pass); the
storage logs one line of its own when a migration is actually applied.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["ALEMBIC_LOGGERS", "quiet_alembic"]

ALEMBIC_LOGGERS = (
    "alembic.runtime.plugins",
    "alembic.runtime.migration",
    "alembic.config",
    "alembic.ddl.postgresql",
)
"""The Alembic loggers that report at INFO on the paths EverTask uses."""


class _QuietFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not getattr(self.local, "depth", 0)


_filter = _QuietFilter()
for _name in ALEMBIC_LOGGERS:
    logging.getLogger(_name).addFilter(_filter)


@contextlib.contextmanager
def quiet_alembic() -> Iterator[None]:
    """Drop Alembic's INFO and DEBUG records emitted on this thread while inside."""
    local = _filter.local
    local.depth = getattr(local, "depth", 0) + 1
    try:
        yield
    finally:
        local.depth -= 1
