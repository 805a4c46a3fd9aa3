"""An application served by ``uvicorn --workers 2`` in the cluster tests: each worker
process starts a host in the lifespan and registers the same recurring key.

The storage comes from ``EVERTASK_CLUSTER_SPEC`` (a node_child storage spec, JSON);
ticks are appended to ``EVERTASK_CLUSTER_TICKS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from dependency_injector import containers
from fastapi import FastAPI

from evertask import EverTaskHost, EverTaskOptions, add_evertask
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Beat(EverTask, task_name="cluster.UvicornBeat"):
    pass


def _append(line: str) -> None:
    with open(os.environ["EVERTASK_CLUSTER_TICKS"], "a") as out:
        out.write(line + "\n")


class BeatHandler(EverTaskHandler[Beat]):
    def handle(self, task: Beat, cancellation: CancellationToken) -> None:
        _append(f"{os.getpid()} {datetime.now(UTC).isoformat()}")  # (a sync handler)


def _configure(o: EverTaskOptions) -> None:
    o.register_handler(BeatHandler)
    o.set_lease_duration(timedelta(seconds=2)).set_heartbeat_interval(timedelta(seconds=0.5))
    o.set_cluster_poll_interval(timedelta(seconds=0.2))


def _host() -> EverTaskHost:
    spec = json.loads(os.environ["EVERTASK_CLUSTER_SPEC"])
    builder = add_evertask(containers.DynamicContainer(), _configure)
    if spec["kind"] == "sqlite":
        builder.add_sqlite_storage(spec["path"])
    elif spec["kind"] == "postgres":
        builder.add_postgres_storage(spec["url"], schema=spec["schema"])
    else:
        builder.add_mysql_storage(spec["url"])
    return builder.build()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    host = _host()
    async with host:
        await host.dispatcher.dispatch(
            Beat(), lambda b: b.schedule().every(1).seconds(), task_key="uvicorn-beat"
        )
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/pid")
async def pid() -> dict[str, int]:
    """Which worker process answered."""
    return {"pid": os.getpid()}
