"""Huey on memory (consumer threads in this process), SQLite or Redis (``huey_consumer``).

Settings (docs/consumer.rst): thread workers (``-k thread``, the documented choice for
I/O-bound tasks), ``-w`` = the run's concurrency, periodic tasks off (``-n``), logging at
WARNING (``-q``: no line per task), the other consumer options at their defaults
(polling: 0.1 s initial delay, backoff 1.15, at most 10 s; Redis blocks on BRPOP instead
of polling; the scheduler checks due tasks every second).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime

import _kit
from huey import MemoryHuey, RedisHuey, SqliteHuey

REQ = _kit.Request.from_env()

if REQ.backend == "memory":
    huey = MemoryHuey("bench")
elif REQ.backend == "sqlite":
    huey = SqliteHuey("bench", filename=os.path.join(REQ.workdir, "huey.db"))
else:
    huey = RedisHuey("bench", url=REQ.redis_url)


@huey.task()
def noop(tag, i):
    _kit.done(tag, i)


@huey.task()
def sleeper(tag, i):
    started = _kit.begin()
    time.sleep(_kit.sleep_seconds())
    _kit.done(tag, i, started)


class HueyPeer:
    stoppable = True
    unsupported: dict[str, str] = {}

    def __init__(self, req):
        self.req = req
        self.in_process = req.backend == "memory"
        where = "consumer threads in this process" if self.in_process else "huey_consumer process"
        wait = (
            "blocking BRPOP"
            if req.backend == "redis"
            else "polling 0.1 s, backoff 1.15, at most 10 s (defaults)"
        )
        self.settings = (
            f"{type(huey).__name__}; {where}; -k thread -w <concurrency> -n -q; {wait}; "
            "scheduler every 1 s"
        )
        self.consumer = None

    def versions(self):
        names = ["huey"] + (["redis"] if self.req.backend == "redis" else [])
        return _kit.package_versions(*names)

    async def prepare(self, concurrency):
        if self.in_process:
            huey.flush()
            self.consumer = huey.create_consumer(
                workers=concurrency, worker_type="thread", periodic=False
            )
        else:
            self.consumer = _kit.Consumer(
                [
                    sys.executable,
                    "-m",
                    "huey.bin.huey_consumer",
                    "huey_peer.huey",
                    "-k",
                    "thread",
                    "-w",
                    str(concurrency),
                    "-n",
                    "-q",
                ]
            )

    async def start(self):
        self.consumer.start()

    async def close(self):
        if self.in_process:
            self.consumer.stop(graceful=True)
        else:
            self.consumer.stop()

    async def enqueue(self, tag, index, sleep):
        (sleeper if sleep else noop)(tag, index)

    async def schedule(self, tag, index, at):
        noop.schedule(args=(tag, index), eta=datetime.fromtimestamp(at, UTC))


if __name__ == "__main__":
    import huey_peer  # the consumer imports this module by name: register the tasks so too

    _kit.run(huey_peer.HueyPeer)
