"""``python manage.py evertask_worker``: run an EverTask worker node until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from evertask import EverTaskHost

from ...runtime import configure


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Run an EverTask worker node: it runs the tasks the web processes dispatch, until "
        "SIGTERM or Ctrl-C, then stops gracefully (running tasks get the grace period)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-period",
            type=float,
            default=None,
            help="seconds running tasks may finish in at stop (default: EVERTASK_GRACE_PERIOD)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        builder = configure(run_workers=True)
        if options["grace_period"] is not None:
            builder.options.set_shutdown_grace_period(options["grace_period"])
        asyncio.run(self._run(builder.build()))

    async def _run(self, host: EverTaskHost) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still works
                loop.add_signal_handler(signum, stop.set)
        try:
            async with host:
                self._say(
                    f"EverTask worker node {host.node_id} running "
                    f"(queues: {', '.join(host.queue_names)}); SIGTERM or Ctrl-C stops it."
                )
                await stop.wait()
                self._say("Stopping: running tasks get the grace period...")
        finally:
            for signum in signals:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(signum)
        self._say("EverTask worker stopped.")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
