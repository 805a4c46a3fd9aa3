"""The tasks of the sample and their handlers."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class GenerateReport(EverTask, task_name="samples.django.generate-report"):
    """Build a report of ``rows`` rows (stands for a slow job a view must not wait for)."""

    name: str
    rows: int = 1000


class GenerateReportHandler(EverTaskHandler[GenerateReport]):
    """A synchronous handler: it runs in a worker thread, never on the event loop, so it
    may call blocking code such as the Django ORM (call ``django.db.close_old_connections()``
    around ORM work, as Django does around each request)."""

    timeout = timedelta(minutes=1)

    def handle(self, task: GenerateReport, cancellation: CancellationToken) -> None:
        digest = hashlib.sha256()
        for row in range(task.rows):
            if row % 250 == 0:
                cancellation.raise_if_cancelled()
            digest.update(f"{task.name}:{row}".encode())
        self.logger.info(
            "Report %s: %d rows, checksum %s", task.name, task.rows, digest.hexdigest()[:12]
        )
