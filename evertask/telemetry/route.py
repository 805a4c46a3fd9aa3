"""What spans and metrics of one (handler, queue, audit level, recurring) combination
share: names and attribute dictionaries built once."""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from evertask_abstractions import AuditLevel

from ..observe import Outcome
from ..registry import HandlerDescriptor
from ..run import TaskRun
from .metrics import CounterKey
from .names import (
    ATTR_AUDIT_LEVEL,
    ATTR_DESTINATION,
    ATTR_DISPATCH_KIND,
    ATTR_HANDLER,
    ATTR_MESSAGE_ID,
    ATTR_OPERATION_NAME,
    ATTR_OPERATION_TYPE,
    ATTR_OUTCOME,
    ATTR_RECURRING,
    ATTR_SYSTEM,
    ATTR_TASK_KEY,
    ATTR_TASK_TYPE,
    OPERATION_PROCESS,
    OPERATION_PUBLISH,
    SYSTEM,
)

__all__ = ["Route", "run_attributes", "type_name"]

_LEVEL_NAMES = {level: level.name.title().replace("_", "") for level in AuditLevel}  # "Full"


def type_name(error: BaseException) -> str:
    """The exception's class for ``error.type`` (qualified unless built in)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def run_attributes(
    run: TaskRun, kind: str | None, attrs: dict[str, AttributeValue]
) -> dict[str, AttributeValue]:
    """``attrs`` with the attributes that change with every run added."""
    attrs[ATTR_MESSAGE_ID] = str(run.id)
    if kind is not None:
        attrs[ATTR_DISPATCH_KIND] = kind
    if run.task_key is not None:
        attrs[ATTR_TASK_KEY] = run.task_key
    return attrs


class Route:
    """What is constant for one (handler, queue, audit level, recurring) combination."""

    __slots__ = (
        "completed_attrs",
        "key",
        "metric_attrs",
        "outcome_attrs",
        "process_attrs",
        "process_name",
        "publish_attrs",
        "publish_name",
        "queue",
        "task_type",
    )

    def __init__(
        self, desc: HandlerDescriptor, queue: str, level: AuditLevel, recurring: bool
    ) -> None:
        self.queue = queue
        self.task_type = desc.task_type_name
        common: dict[str, AttributeValue] = {
            ATTR_SYSTEM: SYSTEM,
            ATTR_DESTINATION: queue,
            ATTR_TASK_TYPE: desc.task_type_name,
            ATTR_HANDLER: desc.handler_type_name,
            ATTR_AUDIT_LEVEL: _LEVEL_NAMES[level],
            ATTR_RECURRING: recurring,
        }
        self.publish_name = f"{queue} {OPERATION_PUBLISH}"
        self.process_name = f"{queue} {OPERATION_PROCESS}"
        self.publish_attrs: dict[str, AttributeValue] = {
            **common,
            ATTR_OPERATION_TYPE: OPERATION_PUBLISH,
            ATTR_OPERATION_NAME: OPERATION_PUBLISH,
        }
        self.process_attrs: dict[str, AttributeValue] = {
            **common,
            ATTR_OPERATION_TYPE: OPERATION_PROCESS,
            ATTR_OPERATION_NAME: OPERATION_PROCESS,
        }
        self.key: CounterKey = (queue, desc.task_type_name)
        self.metric_attrs = {ATTR_DESTINATION: queue, ATTR_TASK_TYPE: desc.task_type_name}
        # the duration histogram's attributes per outcome, built once (not at every record)
        self.outcome_attrs = {o: {**self.metric_attrs, ATTR_OUTCOME: o.value} for o in Outcome}
        self.completed_attrs = self.outcome_attrs[Outcome.COMPLETED]
