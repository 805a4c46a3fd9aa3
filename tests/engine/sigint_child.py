"""A host with one long task, run until interrupted (driven by test_sigint.py)."""

from __future__ import annotations

import asyncio
import logging
import sys

from dependency_injector import containers

from evertask import add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Long(EverTask, task_name="tests.sigint.long"):
    seconds: float


class LongHandler(EverTaskHandler[Long]):
    async def handle(self, task: Long, cancellation: CancellationToken) -> None:
        await asyncio.sleep(task.seconds)


def main(path: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    host = (
        add_evertask(containers.DynamicContainer(), lambda o: o.register_handler(LongHandler))
        .add_sqlite_storage(path)
        .build()
    )

    async def started() -> None:
        task_id = await host.dispatcher.dispatch(Long(seconds=600))
        print(f"READY {task_id}", flush=True)
        await asyncio.Event().wait()

    host.run_forever(started)
    print("EXITED", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
