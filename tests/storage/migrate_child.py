"""Child process of the concurrent-migration test: waits for a go file, then opens storage."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from evertask_storage_mysql import MySqlTaskStorage
from evertask_storage_sqlite import SqliteTaskStorage


async def main(kind: str, target: str, go: Path) -> None:
    deadline = time.monotonic() + 30
    while not go.exists():  # start together (the parent creates the file once all are up)
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        await asyncio.sleep(0.005)
    storage = SqliteTaskStorage(target) if kind == "sqlite" else MySqlTaskStorage(target)
    await storage.open()
    await storage.close()


if __name__ == "__main__":
    Path(sys.argv[4]).touch()  # "ready"
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
