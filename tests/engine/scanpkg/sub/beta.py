from __future__ import annotations

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler
from tests.engine.scanpkg.alpha import AlphaHandler  # imported, not defined here: not re-registered

__all__ = ["AlphaHandler", "BetaHandler"]


class Beta(EverTask):
    pass


class BetaHandler(EverTaskHandler[Beta]):
    def handle(self, task: Beta, cancellation: CancellationToken) -> None:
        return None
