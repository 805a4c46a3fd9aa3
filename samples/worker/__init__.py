"""A dedicated worker process, started with ``evertask run``.

Workers and the application share one database; the application dispatches (it can be a
dispatch-only node: ``set_run_workers(False)``), the workers run the tasks::

    evertask run samples.worker:create_builder            # a worker node (start several)
    python -m samples.worker dispatch 5                   # dispatch-only: five tasks
    evertask tasks list --storage worker.db               # what happened
    evertask nodes --storage worker.db                    # who is running

The database is ``$EVERTASK_WORKER_DB`` (default ``worker.db`` in the current directory);
any storage URL the command line accepts works with the builder's matching
``add_*_storage``. SIGTERM or Ctrl-C stops a worker gracefully; its pending tasks go to
the other workers (see docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from dependency_injector import containers

from evertask import EverTaskServiceBuilder, add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

__all__ = ["DB_ENV", "ResizeImage", "ResizeImageHandler", "create_builder"]

DB_ENV = "EVERTASK_WORKER_DB"


class ResizeImage(EverTask, task_name="samples.worker.resize_image"):
    """Resize one image (simulated)."""

    image: str
    width: int


class ResizeImageHandler(EverTaskHandler[ResizeImage]):
    timeout = timedelta(minutes=1)

    async def handle(self, task: ResizeImage, cancellation: CancellationToken) -> None:
        self.logger.info("Resizing %s to %d px", task.image, task.width)
        await asyncio.sleep(0.05)  # the work


def create_builder(*, run_workers: bool = True) -> EverTaskServiceBuilder:
    """The builder ``evertask run samples.worker:create_builder`` runs (also used, with
    ``run_workers=False``, by the dispatching side)."""
    return add_evertask(
        containers.DynamicContainer(),
        lambda o: (
            o.register_handler(ResizeImageHandler)
            .set_max_degree_of_parallelism(4)
            .set_shutdown_grace_period(10)
            .set_run_workers(run_workers)
        ),
    ).add_sqlite_storage(os.environ.get(DB_ENV, "worker.db"))
