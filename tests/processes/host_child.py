"""A host in a process of its own, killed with SIGKILL by test_orphans.py.

It starts its worker processes, keeps one of them busy with endless CPU work, prints the
worker pids as one JSON line, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from evertask import add_evertask
from tests.helpers import Container
from tests.processes.tasks import Endless, EndlessHandler


async def main() -> None:
    host = (
        add_evertask(
            Container(),
            lambda o: o.register_handler(EndlessHandler).configure_process_pool(
                lambda p: p.set_size(2)
            ),
        )
        .add_memory_storage()
        .build()
    )
    async with host:
        pool = host.process_pool
        await pool.warm_up()
        await host.dispatcher.dispatch(Endless())
        while pool.stats()["busy"] < 1:
            await asyncio.sleep(0.01)
        print(json.dumps(pool.worker_pids), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
