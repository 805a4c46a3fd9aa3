"""``python -m samples.worker dispatch N``: dispatch N tasks as a dispatch-only node."""

from __future__ import annotations

import asyncio
import sys

from . import ResizeImage, create_builder


async def dispatch(count: int) -> None:
    host = create_builder(run_workers=False).build()
    async with host:
        for i in range(count):
            task_id = await host.dispatcher.dispatch(ResizeImage(image=f"photo-{i}.jpg", width=640))
            print(task_id, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "dispatch" or not argv[1].isdigit():
        print("usage: python -m samples.worker dispatch N", file=sys.stderr)
        return 2
    asyncio.run(dispatch(int(argv[1])))
    return 0


sys.exit(main(sys.argv[1:]))
