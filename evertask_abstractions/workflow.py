"""Batches and workflows: what a dispatcher takes and what it reports (docs/workflows.md).

A :class:`Workflow` is a plan of stages dispatched as one unit: each stage is one task or
a group of tasks run in parallel, and it starts once every task of the stage before it
has completed. A step may name a compensating task (a saga): when the workflow fails,
the compensations of the steps that completed run one after another, in reverse order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from .errors import ConfigurationError
from .task import EverTask

__all__ = ["BatchInfo", "BatchKind", "BatchStatus", "Step", "Workflow"]


class BatchKind(str, Enum):
    """What a stored batch record stands for."""

    BATCH = "Batch"
    """Tasks dispatched together with ``dispatch_batch``."""
    GROUP = "Group"
    """The parallel steps of one stage of a workflow."""
    WORKFLOW = "Workflow"
    """A workflow: every step of it (compensations excluded)."""
    COMPENSATION = "Compensation"
    """The compensations a failed workflow runs (a saga)."""

    def __str__(self) -> str:
        return self.value


class BatchStatus(str, Enum):
    """A batch's outcome: Running until each member has finished."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    """Every member completed."""
    FAILED = "Failed"
    """Every member finished and at least one did not complete (failed or cancelled)."""
    CANCELLED = "Cancelled"
    """Cancelled as a whole (``cancel_batch``)."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A batch's (or a workflow's) progress, as stored."""

    id: uuid.UUID
    kind: BatchKind
    name: str | None
    status: BatchStatus
    total: int
    succeeded: int
    failed: int
    cancelled: int
    created_at_utc: datetime
    finished_at_utc: datetime | None = None
    workflow_id: uuid.UUID | None = None
    """The workflow a group or a compensation belongs to."""

    @property
    def pending(self) -> int:
        """Members not finished yet."""
        return self.total - self.succeeded - self.failed - self.cancelled

    @property
    def finished(self) -> bool:
        """Whether the batch has its outcome (continuations on it have been released)."""
        return self.status is not BatchStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Step:
    """One task of a workflow, with the task that undoes it (``compensate``) if any."""

    task: EverTask
    compensate: EverTask | None = None

    def __post_init__(self) -> None:
        for name, value in (("task", self.task), ("compensate", self.compensate)):
            if value is not None and not isinstance(value, EverTask):
                raise ConfigurationError(
                    f"A workflow step's {name} must be an EverTask instance, got "
                    f"{type(value).__qualname__}."
                )


class Workflow:
    """A fluent plan of stages, dispatched as one unit with
    ``dispatcher.dispatch_workflow(workflow)``::

        Workflow("order-42")
            .then(ReserveStock(order=42), compensate=ReleaseStock(order=42))
            .group(ShipFromA(order=42), ShipFromB(order=42))   # in parallel
            .then(NotifyCustomer(order=42))                    # after both; reads their results

    A stage runs once every step of the previous stage has completed; a failed (or
    cancelled) step cancels every later stage. A step after a group reads the group's
    results with ``await self.parent_results(T)`` (a step after one task:
    ``parent_result``).
    """

    __slots__ = ("_stages", "name")

    def __init__(self, name: str | None = None) -> None:
        if name is not None and len(name) > 200:
            raise ConfigurationError("A workflow name is at most 200 characters.")
        self.name = name
        self._stages: list[tuple[Step, ...]] = []

    def then(self, task: EverTask | Step, *, compensate: EverTask | None = None) -> Workflow:
        """Append a stage of one step (``compensate``: the task that undoes it)."""
        step = task if isinstance(task, Step) else Step(task, compensate)
        if isinstance(task, Step) and compensate is not None:
            raise ConfigurationError("Pass compensate either in the Step or to then(), not both.")
        self._stages.append((step,))
        return self

    def group(self, *steps: EverTask | Step) -> Workflow:
        """Append a stage of steps run in parallel (wrap a step in :class:`Step` to give
        it a compensation)."""
        if not steps:
            raise ConfigurationError("A workflow group needs at least one step.")
        self._stages.append(tuple(s if isinstance(s, Step) else Step(s) for s in steps))
        return self

    @property
    def stages(self) -> tuple[tuple[Step, ...], ...]:
        """The stages in order; each a tuple of its steps."""
        return tuple(self._stages)

    @property
    def is_saga(self) -> bool:
        """Whether any step names a compensation."""
        return any(s.compensate is not None for stage in self._stages for s in stage)

    def steps(self) -> Iterable[Step]:
        """Every step, stage by stage."""
        for stage in self._stages:
            yield from stage
