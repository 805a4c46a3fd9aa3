"""SAQ on Redis or PostgreSQL: the producer here, one ``saq`` worker process.

Settings (README, ``saq/worker.py`` and ``saq/job.py`` defaults): ``concurrency`` = the run's
concurrency, ``--workers 1``; Redis wakes workers with BLMOVE, PostgreSQL with
LISTEN/NOTIFY; scheduled jobs are moved by the worker's "schedule" timer (every 1 s).
``Job.scheduled`` is whole epoch seconds, so a task due at t is given ceil(t) and its
lateness is measured from that second.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys

import _kit
from saq import Queue

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()
URL = REQ.redis_url if REQ.backend == "redis" else REQ.pg_dsn


async def noop(ctx, *, tag, i):
    _kit.done(tag, i)


async def sleeper(ctx, *, tag, i):
    started = _kit.begin()
    await asyncio.sleep(SLEEP)
    _kit.done(tag, i, started)


settings = {
    "queue": Queue.from_url(URL),
    "functions": [noop, sleeper],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "10")),
}


class SaqPeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}

    def __init__(self, req):
        self.req = req
        self.queue = None
        self.consumer = None
        wake = "BLMOVE" if req.backend == "redis" else "LISTEN/NOTIFY"
        self.settings = (
            f"one `saq` worker process (--workers 1); concurrency = concurrency; wake-up by "
            f"{wake}; schedule timer 1 s; whole-second `scheduled` (rounded up)"
        )

    def versions(self):
        names = ["saq"] + (["redis"] if self.req.backend == "redis" else ["psycopg"])
        return _kit.package_versions(*names)

    async def prepare(self, concurrency):
        self.queue = Queue.from_url(URL)
        await self.queue.connect()
        self.consumer = _kit.Consumer(
            [sys.executable, "-m", "saq", "saq_peer.settings", "--workers", "1"],
            env={"BENCH_CONCURRENCY": str(concurrency)},
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()
        await self.queue.disconnect()

    async def enqueue(self, tag, index, sleep):
        await self.queue.enqueue("sleeper" if sleep else "noop", tag=tag, i=index)

    async def schedule(self, tag, index, at):
        second = math.ceil(at)
        await self.queue.enqueue("noop", tag=tag, i=index, scheduled=second)
        return float(second)


if __name__ == "__main__":
    import saq_peer

    _kit.run(saq_peer.SaqPeer)
