"""``python -m samples.console_app``: dispatch a few tasks and wait for them."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

from dependency_injector import containers, providers

from evertask import add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Greeter:
    """A service handlers receive by constructor injection."""

    def __init__(self) -> None:
        self.greeted: list[str] = []
        self.done = asyncio.Event()


class Greet(EverTask, task_name="samples.greet"):
    name: str


class GreetHandler(EverTaskHandler[Greet]):
    def __init__(self, greeter: Greeter) -> None:
        super().__init__()
        self._greeter = greeter

    async def handle(self, task: Greet, cancellation: CancellationToken) -> None:
        self.logger.info("Hello, %s!", task.name)
        self._greeter.greeted.append(task.name)
        if len(self._greeter.greeted) == 3:
            self._greeter.done.set()


class Container(containers.DeclarativeContainer):
    greeter = providers.Singleton(Greeter)


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    container = Container()
    host = (
        add_evertask(container, lambda opt: opt.register_tasks_from_module(sys.modules[__name__]))
        .add_memory_storage()
        .build()
    )
    async with host:
        await host.dispatcher.dispatch(Greet(name="Ada"))
        await host.dispatcher.dispatch(Greet(name="Grace"), timedelta(milliseconds=200))
        await host.dispatcher.dispatch(
            Greet(name="Linus"), lambda b: b.run_delayed(timedelta(milliseconds=400))
        )
        await asyncio.wait_for(container.greeter().done.wait(), 10)
    print("greeted:", ", ".join(container.greeter().greeted))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
