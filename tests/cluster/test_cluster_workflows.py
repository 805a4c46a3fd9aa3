"""A fan-in over 1,000 tasks spread over three node processes fires its continuation once,
also when a node is SIGKILLed while it runs members (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import asyncio
import collections
import uuid

from evertask_abstractions import BatchStatus
from tests.cluster.conftest import Cluster, open_storage

NODES = ("w1", "w2", "w3")
SUM = sum(range(1000))


def _gathers(cluster: Cluster) -> list[str]:
    return [line for name in NODES for line in cluster.executed(name) if line.startswith("gather ")]


def _batch_id(cluster: Cluster, name: str) -> str:
    path = cluster.wait_file(f"batch-{name}")
    cluster.wait_until(lambda: bool(path.read_text()), 10, "the batch id was written")
    return path.read_text()


def _batch(cluster: Cluster, batch_id: str) -> tuple[BatchStatus, int, int, int]:
    async def read() -> tuple[BatchStatus, int, int, int]:
        store = open_storage(cluster.storage)
        await store.open()
        try:
            batch = await store.get_batch(uuid.UUID(batch_id))
            assert batch is not None
            return batch.status, batch.total, batch.succeeded, batch.failed + batch.cancelled
        finally:
            await store.close()

    return asyncio.run(read())


def test_fan_in_over_1000_tasks_on_three_nodes_fires_once(cluster: Cluster) -> None:
    cluster.start("w1", work_ms=5)
    cluster.start("w2", work_ms=5)
    cluster.start("w3", work_ms=5, batch=[0, 1000])
    batch_id = _batch_id(cluster, "w3")
    cluster.wait_until(lambda: bool(_gathers(cluster)), 120, "the fan-in ran")
    for name in NODES:
        cluster.stop(name)
    assert _gathers(cluster) == [f"gather {batch_id} 1000 {SUM}"]
    ran = collections.Counter(n for name in NODES for n in cluster.work(name))
    assert set(ran) == set(range(1000)) and max(ran.values()) == 1
    busy = [name for name in NODES if cluster.work(name)]
    assert len(busy) >= 2, {name: len(cluster.work(name)) for name in NODES}
    assert _batch(cluster, batch_id) == (BatchStatus.COMPLETED, 1000, 1000, 0)


def test_fan_in_survives_a_sigkilled_node(cluster: Cluster) -> None:
    cluster.start("w1", work_ms=40, parallelism=2)
    cluster.start("w2", work_ms=10, parallelism=2)
    cluster.start("w3", work_ms=10, parallelism=2, batch=[0, 1000])
    batch_id = _batch_id(cluster, "w3")
    cluster.wait_until(lambda: len(cluster.work("w1")) >= 5, 60, "w1 ran members")
    cluster.kill("w1")
    done_by_w1 = cluster.work("w1")
    cluster.wait_until(lambda: bool(_gathers(cluster)), 120, "the fan-in ran")
    for name in ("w2", "w3"):
        cluster.stop(name)
    assert _gathers(cluster) == [f"gather {batch_id} 1000 {SUM}"]
    ran = collections.Counter(done_by_w1 + cluster.work("w2") + cluster.work("w3"))
    assert set(ran) == set(range(1000))
    assert sum(c - 1 for c in ran.values()) <= 2  # at most w1's in-flight members again
    # each member counted once, though a killed node's member ran twice
    assert _batch(cluster, batch_id) == (BatchStatus.COMPLETED, 1000, 1000, 0)
