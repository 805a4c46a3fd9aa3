from __future__ import annotations

from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Alpha(EverTask):
    pass


class AlphaHandler(EverTaskHandler[Alpha]):
    async def handle(self, task: Alpha, cancellation: CancellationToken) -> None:
        return None
