"""Celery on Redis: the producer here, one ``celery worker`` process.

Settings (docs/userguide/optimizing.rst, workers.rst, configuration.rst): thread pool
(``-P threads``: the tasks are I/O-bound; one process, like the others) with
``-c`` = the run's concurrency, ``worker_prefetch_multiplier = 64`` ("lots of short tasks
... you want this number to be large"), results ignored (``task_ignore_result``), rate
limits disabled, ``--without-gossip --without-mingle --without-heartbeat``, log level
WARNING, acknowledgement at receipt (the default). Scheduled tasks use ``eta=``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import _kit
from celery import Celery

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()

app = Celery("celery_peer", broker=REQ.redis_url)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
    worker_disable_rate_limits=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(tag, i):
    _kit.done(tag, i)


@app.task(name="sleeper")
def sleeper(tag, i):
    started = _kit.begin()
    time.sleep(SLEEP)
    _kit.done(tag, i, started)


class CeleryPeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}
    settings = (
        "one `celery worker` process: -P threads -c <concurrency>, prefetch multiplier 64, "
        "task_ignore_result, rate limits off, --without-gossip/mingle/heartbeat, "
        "-l WARNING; ETA tasks via `eta=`"
    )

    def __init__(self, req):
        self.req = req
        self.consumer = None

    def versions(self):
        return _kit.package_versions("celery", "kombu", "redis")

    async def prepare(self, concurrency):
        self.consumer = _kit.Consumer(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_peer",
                "worker",
                "-P",
                "threads",
                "-c",
                str(concurrency),
                "-l",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()

    async def enqueue(self, tag, index, sleep):
        (sleeper if sleep else noop).delay(tag, index)

    async def schedule(self, tag, index, at):
        noop.apply_async((tag, index), eta=datetime.fromtimestamp(at, UTC))


if __name__ == "__main__":
    import celery_peer

    _kit.run(celery_peer.CeleryPeer)
