"""The console sample's application: a service, a task, its handler and the container.

``__main__`` runs it; ``tests/samples`` tests it with :mod:`evertask.testing`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from dependency_injector import containers, providers

from evertask import EverTaskOptions
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler, TaskDispatcher

__all__ = ["Container", "Greet", "GreetHandler", "Greeter", "configure", "greet_everyone"]

NAMES = ("Ada", "Grace", "Linus")


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
        if len(self._greeter.greeted) == len(NAMES):
            self._greeter.done.set()


class Container(containers.DeclarativeContainer):
    greeter = providers.Singleton(Greeter)


def configure(options: EverTaskOptions) -> None:
    """The sample's EverTask options (``add_evertask(container, configure)``)."""
    options.register_tasks_from_module(sys.modules[__name__])


async def greet_everyone(dispatcher: TaskDispatcher) -> None:
    """Greet Ada now, Grace after 200 ms and Linus after 400 ms."""
    ada, grace, linus = NAMES
    await dispatcher.dispatch(Greet(name=ada))
    await dispatcher.dispatch(Greet(name=grace), timedelta(milliseconds=200))
    await dispatcher.dispatch(
        Greet(name=linus), lambda b: b.run_delayed(timedelta(milliseconds=400))
    )
