"""Dramatiq on Redis: the producer here, one ``dramatiq`` worker process.

Settings (docs: cookbook and ``dramatiq --help``): ``RedisBroker`` with its default
middleware, ``--processes 1 --threads <concurrency>`` (the run's concurrency in one process;
the default would be one process per CPU with 8 threads each), other options at their
defaults; scheduled tasks use ``send_with_options(delay=...)`` (the broker's delay queue).
"""

from __future__ import annotations

import sys
import time

import _kit
import dramatiq
from dramatiq.brokers.redis import RedisBroker

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()

broker = RedisBroker(url=REQ.redis_url)
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(tag, i):
    _kit.done(tag, i)


@dramatiq.actor
def sleeper(tag, i):
    started = _kit.begin()
    time.sleep(SLEEP)
    _kit.done(tag, i, started)


class DramatiqPeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}
    settings = (
        "RedisBroker, default middleware; one `dramatiq` process (--processes 1 "
        "--threads <concurrency>); delayed messages via `delay=`"
    )

    def __init__(self, req):
        self.req = req
        self.consumer = None

    def versions(self):
        return _kit.package_versions("dramatiq", "redis")

    async def prepare(self, concurrency):
        self.consumer = _kit.Consumer(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "dramatiq_peer",
                "--processes",
                "1",
                "--threads",
                str(concurrency),
            ]
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()

    async def enqueue(self, tag, index, sleep):
        (sleeper if sleep else noop).send(tag, index)

    async def schedule(self, tag, index, at):
        delay_ms = max(0, round((at - time.time()) * 1000))
        noop.send_with_options(args=(tag, index), delay=delay_ms)


if __name__ == "__main__":
    import dramatiq_peer

    _kit.run(dramatiq_peer.DramatiqPeer)
