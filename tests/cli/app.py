"""The builder factory ``evertask run tests.cli.app:create_builder`` starts (and the test
process uses as a dispatch-only node)."""

from __future__ import annotations

import asyncio
import os

from dependency_injector import containers

from evertask import EverTaskServiceBuilder, add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler

DB_ENV = "EVERTASK_CLI_TEST_DB"
HOLD_ENV = "EVERTASK_CLI_TEST_HOLD"


class Hold(EverTask, task_name="tests.cli.hold"):
    label: str


class HoldHandler(EverTaskHandler[Hold]):
    """Runs until cancelled while ``EVERTASK_CLI_TEST_HOLD=1``; otherwise finishes at once."""

    async def handle(self, task: Hold, cancellation: CancellationToken) -> None:
        self.logger.info("handling %s", task.label)
        if os.environ.get(HOLD_ENV) == "1":
            await asyncio.Event().wait()


def create_builder(path: str | None = None, *, run_workers: bool = True) -> EverTaskServiceBuilder:
    database = path or os.environ[DB_ENV]
    return add_evertask(
        containers.DynamicContainer(),
        lambda o: (
            o.register_handler(HoldHandler)
            .set_lease_duration(3)
            .set_heartbeat_interval(0.25)
            .set_cluster_poll_interval(0.1)
            .set_run_workers(run_workers)
        ),
    ).add_sqlite_storage(database)


async def create_builder_async() -> EverTaskServiceBuilder:
    """An async factory (awaited by ``evertask run``)."""
    return create_builder()


def not_a_builder() -> int:
    return 42


def broken() -> EverTaskServiceBuilder:
    raise RuntimeError("the factory is broken")
