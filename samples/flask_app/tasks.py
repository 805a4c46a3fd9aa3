"""The tasks of the Flask sample, their handlers and the service they use."""

from __future__ import annotations

import asyncio
import threading

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Outbox:
    """Where "sent" newsletters go (a stand-in for a mail service), shared by the handlers
    (host thread) and the routes (request threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[str] = []

    def add(self, email: str) -> None:
        with self._lock:
            self._sent.append(email)

    def sent(self) -> list[str]:
        with self._lock:
            return list(self._sent)


class SendNewsletter(EverTask, task_name="samples.flask.send-newsletter"):
    """Send this month's newsletter to one subscriber."""

    email: str


class SendNewsletterHandler(EverTaskHandler[SendNewsletter]):
    """An async handler: it runs on the host's event loop, on the host's thread."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__()
        self._outbox = outbox

    async def handle(self, task: SendNewsletter, cancellation: CancellationToken) -> None:
        await asyncio.sleep(0)  # the network call of a real mail client
        self._outbox.add(task.email)
        self.logger.info("Newsletter sent to %s", task.email)
