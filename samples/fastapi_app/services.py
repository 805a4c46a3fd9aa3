"""Application services injected into handlers."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

log = logging.getLogger("samples.email")


class EmailService:
    """Pretends to send emails."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, subject: str) -> None:
        await asyncio.sleep(0.005)
        self.sent.append((to, subject))
        log.info("email to %s: %s", to, subject)


class Stats:
    """Counts what the handlers did (shown at GET /stats)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str) -> None:
        self.counts[name] += 1
