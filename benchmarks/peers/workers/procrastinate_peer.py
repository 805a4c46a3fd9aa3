"""procrastinate on PostgreSQL: the producer here, one ``procrastinate worker`` process.

Settings (docs: howto/basics/worker.md, howto/production): ``PsycopgConnector``, worker
``--concurrency`` = the run's concurrency, LISTEN/NOTIFY on (the default), the default
5 s polling interval (which is also when scheduled jobs are noticed), jobs kept after
completion (the default), log level warning (no line per job).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import _kit
import procrastinate

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=REQ.pg_dsn))


@app.task(name="noop")
async def noop(tag, i):
    _kit.done(tag, i)


@app.task(name="sleeper")
async def sleeper(tag, i):
    started = _kit.begin()
    await asyncio.sleep(SLEEP)
    _kit.done(tag, i, started)


class ProcrastinatePeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}
    settings = (
        "PsycopgConnector; one `procrastinate worker` process (--concurrency <concurrency>), "
        "LISTEN/NOTIFY, default polling 5 s, --log-level warning; scheduled jobs via `schedule_at`"
    )

    def __init__(self, req):
        self.req = req
        self.consumer = None
        self.opened = None
        self.schema = False

    def versions(self):
        return _kit.package_versions("procrastinate", "psycopg")

    async def prepare(self, concurrency):
        self.opened = app.open_async()
        await self.opened.__aenter__()
        if not self.schema:
            await app.schema_manager.apply_schema_async()
            self.schema = True
        self.consumer = _kit.Consumer(
            [
                sys.executable,
                "-m",
                "procrastinate",
                "--log-level",
                "warning",
                "--app",
                "procrastinate_peer.app",
                "worker",
                "--concurrency",
                str(concurrency),
            ]
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()
        await self.opened.__aexit__(None, None, None)

    async def enqueue(self, tag, index, sleep):
        await (sleeper if sleep else noop).defer_async(tag=tag, i=index)

    async def schedule(self, tag, index, at):
        when = datetime.fromtimestamp(at, UTC)
        await noop.configure(schedule_at=when).defer_async(tag=tag, i=index)


if __name__ == "__main__":
    import procrastinate_peer

    _kit.run(procrastinate_peer.ProcrastinatePeer)
