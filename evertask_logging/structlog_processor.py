"""structlog integration: a processor adding the task context to every event.

.. code-block:: python

    structlog.configure(processors=[
        evertask_logging.add_task_context,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ])

The processor does not import structlog, so it is always importable.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from .context import task_fields

__all__ = ["add_task_context"]


def add_task_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``task_id``, ``task_type``, ``handler``, ``queue``,
    ``attempt``, ``trace_id`` and ``span_id`` (keys already in the event win)."""
    for key, value in task_fields().items():
        event_dict.setdefault(key, value)
    return event_dict
