"""taskiq with the in-memory broker (this process) or ``RedisStreamBroker`` (``taskiq worker``).

Settings (README, taskiq-redis README, ``taskiq worker --help``): Redis uses the stream
broker the taskiq-redis README recommends (acknowledgements), no result backend, one worker
process (``--workers 1``) with ``--max-async-tasks`` = the run's concurrency, log level
WARNING (no line per task); scheduled tasks go to a ``ListRedisScheduleSource`` read by one
``taskiq scheduler`` process with ``--update-interval 1`` (the default re-reads schedules
once a minute). The in-memory broker runs each kicked task at once in this process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime

import _kit
from taskiq import InMemoryBroker, TaskiqScheduler

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()

if REQ.backend == "memory":
    broker = InMemoryBroker()
    source = None
    scheduler = None
else:
    from taskiq_redis import ListRedisScheduleSource, RedisStreamBroker

    broker = RedisStreamBroker(url=REQ.redis_url)
    source = ListRedisScheduleSource(REQ.redis_url)
    scheduler = TaskiqScheduler(broker, sources=[source])


@broker.task
async def noop(tag, i):
    _kit.done(tag, i)


@broker.task
async def sleeper(tag, i):
    started = _kit.begin()
    await asyncio.sleep(SLEEP)
    _kit.done(tag, i, started)


class TaskiqPeer:
    def __init__(self, req):
        self.req = req
        self.in_process = req.backend == "memory"
        self.stoppable = not self.in_process
        self.consumers = []
        if self.in_process:
            self.settings = (
                "InMemoryBroker (each kicked task starts at once in this process, no "
                "concurrency limit); one process"
            )
            self.unsupported = {
                "sleep": "the in-memory broker starts every kicked task at once: a "
                "concurrency of 10 cannot be configured",
                "lateness": "scheduling needs the separate `taskiq scheduler` process, which "
                "cannot reach an in-memory broker",
            }
        else:
            self.settings = (
                "RedisStreamBroker, no result backend; one `taskiq worker` process "
                "(--workers 1 --max-async-tasks <concurrency> --log-level WARNING); "
                "ListRedisScheduleSource + `taskiq scheduler --update-interval 1`"
            )
            self.unsupported = {}

    def versions(self):
        names = ["taskiq"] + ([] if self.in_process else ["taskiq-redis", "redis"])
        return _kit.package_versions(*names)

    async def prepare(self, concurrency):
        await broker.startup()
        if self.in_process:
            return
        await source.startup()
        taskiq = [sys.executable, "-m", "taskiq"]
        self.consumers = [
            _kit.Consumer(
                [
                    *taskiq,
                    "worker",
                    "taskiq_peer:broker",
                    "--workers",
                    "1",
                    "--max-async-tasks",
                    str(concurrency),
                    "--log-level",
                    "WARNING",
                ],
                stop_signal=signal.SIGINT,
            ),
            _kit.Consumer(
                [
                    *taskiq,
                    "scheduler",
                    "taskiq_peer:scheduler",
                    "--update-interval",
                    "1",
                    "--log-level",
                    "WARNING",
                ]
            ),
        ]

    async def start(self):
        for consumer in self.consumers:
            consumer.start()

    async def close(self):
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
        if not self.in_process:
            await source.shutdown()
        await broker.shutdown()

    async def enqueue(self, tag, index, sleep):
        await (sleeper if sleep else noop).kiq(tag, index)

    async def schedule(self, tag, index, at):
        when = datetime.fromtimestamp(at, UTC)
        await noop.kicker().schedule_by_time(source, when, tag, index)


if __name__ == "__main__":
    import taskiq_peer

    _kit.run(taskiq_peer.TaskiqPeer)
