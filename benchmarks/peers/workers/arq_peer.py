"""arq on Redis: the producer here, one ``arq`` worker process.

Settings (docs and ``arq/worker.py`` defaults): ``max_jobs`` = the run's concurrency,
logging at WARNING (``--custom-log-dict``: no line per job), everything else at its
default: ``poll_delay`` 0.5 s, ``queue_read_limit`` max(5 x max_jobs, 100), results kept
1 h, ``job_timeout`` 300 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

import _kit
from arq import create_pool
from arq.connections import RedisSettings

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()


async def noop(ctx, tag, i):
    _kit.done(tag, i)


async def sleeper(ctx, tag, i):
    started = _kit.begin()
    await asyncio.sleep(SLEEP)
    _kit.done(tag, i, started)


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


class WorkerSettings:
    functions = [noop, sleeper]
    redis_settings = RedisSettings.from_dsn(REQ.redis_url)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))


class ArqPeer:
    in_process = False
    stoppable = True
    unsupported: dict[str, str] = {}
    settings = (
        "one `arq` worker process; max_jobs = concurrency; log level WARNING; defaults "
        "otherwise (poll_delay 0.5 s, queue_read_limit 100, keep_result 1 h)"
    )

    def __init__(self, req):
        self.req = req
        self.pool = None
        self.consumer = None

    def versions(self):
        return _kit.package_versions("arq", "redis")

    async def prepare(self, concurrency):
        self.pool = await create_pool(WorkerSettings.redis_settings)
        self.consumer = _kit.Consumer(
            [
                sys.executable,
                "-m",
                "arq",
                "arq_peer.WorkerSettings",
                "--custom-log-dict",
                "arq_peer.LOG_CONFIG",
            ],
            env={"BENCH_CONCURRENCY": str(concurrency)},
        )

    async def start(self):
        self.consumer.start()

    async def close(self):
        self.consumer.stop()
        await self.pool.aclose()

    async def enqueue(self, tag, index, sleep):
        await self.pool.enqueue_job("sleeper" if sleep else "noop", tag, index)

    async def schedule(self, tag, index, at):
        when = datetime.fromtimestamp(at, UTC)
        await self.pool.enqueue_job("noop", tag, index, _defer_until=when)


if __name__ == "__main__":
    import arq_peer

    _kit.run(arq_peer.ArqPeer)
