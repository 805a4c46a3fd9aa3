"""APScheduler 4 (``AsyncScheduler``) on the memory or the SQLAlchemy (PostgreSQL) data store.

Settings: one scheduler in this process (role both), ``max_concurrent_jobs`` = the run's
concurrency, ``TaskDefaults(max_running_jobs=concurrency)`` (the default is 1 job per task
at a time, and ``add_job`` re-applies the defaults to the task), async job executor, no
job results kept (``result_expiration_time=0``, the default), local event broker (one
scheduler: nothing to share). Immediate tasks are
``add_job``; scheduled ones are ``add_schedule`` with a ``DateTrigger``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import _kit
from apscheduler import AsyncScheduler, TaskDefaults
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.triggers.date import DateTrigger

REQ = _kit.Request.from_env()
SLEEP = _kit.sleep_seconds()


async def noop(tag, i):
    _kit.done(tag, i)


async def sleeper(tag, i):
    started = _kit.begin()
    await asyncio.sleep(SLEEP)
    _kit.done(tag, i, started)


class APSchedulerPeer:
    in_process = True
    stoppable = True
    unsupported: dict[str, str] = {}

    def __init__(self, req):
        self.req = req
        store = "MemoryDataStore" if req.backend == "memory" else "SQLAlchemyDataStore (asyncpg)"
        self.settings = (
            f"AsyncScheduler, {store}, LocalEventBroker; max_concurrent_jobs = concurrency; "
            "TaskDefaults(max_running_jobs = concurrency); async executor; one process"
        )
        self.scheduler = None
        self.stack = None
        self.engine = None

    def versions(self):
        names = ["apscheduler"]
        if self.req.backend == "postgres":
            names += ["sqlalchemy", "asyncpg"]
        return _kit.package_versions(*names)

    async def prepare(self, concurrency):
        if self.req.backend == "memory":
            store = MemoryDataStore()
        else:
            from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
            from sqlalchemy.ext.asyncio import create_async_engine

            url = self.req.pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            self.engine = create_async_engine(url)
            store = SQLAlchemyDataStore(self.engine)
        # every add_job() re-applies the task defaults, so the per-task limit goes there
        defaults = TaskDefaults(max_running_jobs=concurrency)
        self.scheduler = AsyncScheduler(
            store, max_concurrent_jobs=concurrency, task_defaults=defaults
        )
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(self.scheduler)

    async def start(self):
        await self.scheduler.start_in_background()

    async def close(self):
        await self.stack.aclose()
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def enqueue(self, tag, index, sleep):
        await self.scheduler.add_job(sleeper if sleep else noop, args=(tag, index))

    async def schedule(self, tag, index, at):
        trigger = DateTrigger(datetime.fromtimestamp(at, UTC))
        await self.scheduler.add_schedule(noop, trigger, args=(tag, index))


if __name__ == "__main__":
    _kit.run(APSchedulerPeer)
