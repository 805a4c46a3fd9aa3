"""The handler of EverTask's own task that compensates a failed saga (docs/workflows.md)."""

from __future__ import annotations

from evertask_abstractions import CancellationToken, EverTaskHandler

from .dispatcher import Dispatcher
from .workflows import CompensateWorkflow

__all__ = ["CompensateWorkflowHandler"]


class CompensateWorkflowHandler(EverTaskHandler[CompensateWorkflow]):
    """Dispatches the compensations of the failed workflow's completed steps, in reverse
    order, in one transaction and once (a second run finds them); its result is their
    batch id (``None``: no completed step had a compensation)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def handle(self, task: CompensateWorkflow, cancellation: CancellationToken) -> str | None:
        batch_id = await self._dispatcher.compensate_workflow(task.workflow_id)
        return None if batch_id is None else str(batch_id)
