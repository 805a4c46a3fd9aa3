"""RQ on Redis: the producer here, ``rq worker-pool`` of ``SimpleWorker`` processes.

Settings (docs/docs/workers.md and docs/benchmark.md): a worker pool of ``-n`` = the run's
concurrency processes (an RQ worker runs one job at a time) with ``SimpleWorker`` (no fork
per job: RQ's own benchmark measures it about 6.5x faster), ``-q`` (WARNING: no line per
job), default result TTL; scheduled jobs use ``enqueue_at`` with the pool's scheduler, which
stores whole seconds, so a task due at t is given ceil(t) and its lateness is measured from
that second.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import UTC, datetime

import _kit
from redis import Redis
from rq import Queue

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()


def noop(tag, i):
    _kit.done(tag, i)


def sleeper(tag, i):
    started = _kit.begin()
    time.sleep(SLEEP)
    _kit.done(tag, i, started)


class RqPeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}
    settings = (
        "`rq worker-pool -n <concurrency> -w rq.worker.SimpleWorker -q` (one job at a time "
        "per process); `enqueue_at` with the pool's scheduler (1 s interval, whole seconds)"
    )

    def __init__(self, req):
        self.req = req
        self.redis = Redis.from_url(req.redis_url)
        self.queue = Queue("default", connection=self.redis)
        self.consumer = None

    def versions(self):
        return _kit.package_versions("rq", "redis")

    async def prepare(self, concurrency):
        self.consumer = _kit.Consumer(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker-pool",
                "-u",
                self.req.redis_url,
                "-w",
                "rq.worker.SimpleWorker",
                "-n",
                str(concurrency),
                "-q",
                "default",
            ]
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()

    async def enqueue(self, tag, index, sleep):
        self.queue.enqueue(sleeper if sleep else noop, tag, index)

    async def schedule(self, tag, index, at):
        second = math.ceil(at)
        when = datetime.fromtimestamp(second, UTC)
        self.queue.enqueue_at(when, noop, tag, index)
        return float(second)


if __name__ == "__main__":
    import rq_peer

    _kit.run(rq_peer.RqPeer)
