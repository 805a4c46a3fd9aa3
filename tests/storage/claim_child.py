"""Child process of the concurrent-claim test: waits for a go file, registers a node, claims
orphans until none are left, prints the ids it got as one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from evertask.storage import NodeInfo
from evertask_storage_postgres import PostgresTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage


async def main(kind: str, target: str, now: datetime, go: Path) -> list[str]:
    storage: Any
    if kind == "sqlite":
        storage = SqliteTaskStorage(target, auto_apply_migrations=False)
    else:
        url, schema = json.loads(target)
        storage = PostgresTaskStorage(url, schema=schema, auto_apply_migrations=False)
    await storage.open()
    try:
        me = NodeInfo(
            id=uuid.uuid4(),
            host_name=socket.gethostname(),
            pid=os.getpid(),
            started_at_utc=now,
            last_heartbeat_utc=now,
            lease_expires_utc=now + timedelta(minutes=5),
        )
        await storage.register_node(me)
        deadline = time.monotonic() + 30
        while not go.exists():  # start together (the parent creates the file once all are up)
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            await asyncio.sleep(0.005)
        got: list[str] = []
        empty = 0
        while empty < 3:  # a claim finds nothing only when no orphan is left, or all are
            claimed = await asyncio.wait_for(storage.claim_orphans(me.id, now, 4), 30)
            got.extend(str(t.id) for t in claimed)
            empty = 0 if claimed else empty + 1
            await asyncio.sleep(0 if claimed else 0.01)  # being claimed by the others
        return got
    finally:
        await storage.close()


if __name__ == "__main__":
    Path(sys.argv[5]).touch()  # "ready"
    ids = asyncio.run(
        main(sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), Path(sys.argv[4]))
    )
    print(json.dumps(ids))
