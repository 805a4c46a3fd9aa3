"""``/nodes`` and the tasks' ``ownerNode``: two hosts on one memory storage (a cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio

from evertask import EverTaskHost, MemoryTaskStorage
from evertask_abstractions import QueuedTaskStatus
from evertask_monitor_api import MonitoringOptions, create_standalone_app

from . import tasks
from .harness import (
    LEASE,
    PASSWORD,
    SECRET,
    USERNAME,
    Api,
    Built,
    build_host,
    fast_lease,
    parent_app,
    stop_heartbeats,
    wait_status,
)

S = QueuedTaskStatus


@dataclass
class Cluster:
    storage: MemoryTaskStorage
    a: EverTaskHost
    b: EverTaskHost
    api_a: Api
    api_b: Api


async def _started(directory: Path, storage: MemoryTaskStorage, **kwargs: Any) -> Built:
    built = build_host("memory", directory, storage=storage, **kwargs)
    await built.host.start()
    return built


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Hosts A and B sharing one memory storage, each with its monitoring API."""
    storage = MemoryTaskStorage()
    a = await _started(tmp_path, storage, options=fast_lease)
    b = await _started(tmp_path, storage, options=fast_lease)
    api_a, api_b = Api(parent_app(a.host)), Api(parent_app(b.host))
    try:
        await api_a.login()
        await api_b.login()
        yield Cluster(storage, a.host, b.host, api_a, api_b)
    finally:
        for api in (api_a, api_b):
            await api.aclose()
        await b.close()
        await a.close()


def by_id(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in nodes}


async def test_nodes_lists_every_host_and_marks_the_current_one(cluster: Cluster) -> None:
    a_id, b_id = str(cluster.a.node_id), str(cluster.b.node_id)
    nodes = await cluster.api_a.json("/nodes")
    assert [n["id"] for n in nodes] == [a_id, b_id]  # oldest first
    seen = by_id(nodes)
    for node in nodes:
        assert node["alive"] is True and node["runsWorkers"] is True
        assert node["hostName"] and node["pid"] > 0
        assert {"default", "reports"} <= set(node["queues"])
        assert node["startedAtUtc"] <= node["lastHeartbeatUtc"] < node["leaseExpiresUtc"]
    assert seen[a_id]["isCurrent"] is True and seen[a_id]["running"] == 0
    assert seen[b_id]["isCurrent"] is False and seen[b_id]["running"] is None
    from_b = by_id(await cluster.api_b.json("/nodes"))
    assert from_b[b_id]["isCurrent"] is True and from_b[b_id]["running"] == 0
    assert from_b[a_id]["isCurrent"] is False and from_b[a_id]["running"] is None


async def test_running_counts_the_current_hosts_executions(cluster: Cluster) -> None:
    held = [await cluster.a.dispatcher.dispatch(tasks.Hold(name=f"n{i}")) for i in range(2)]
    try:
        for tid in held:
            await wait_status(cluster.a, tid, S.IN_PROGRESS)
        a_id = str(cluster.a.node_id)
        assert by_id(await cluster.api_a.json("/nodes"))[a_id]["running"] == 2
        assert by_id(await cluster.api_b.json("/nodes"))[a_id]["running"] is None
    finally:
        for i in range(2):
            tasks.gate(f"n{i}").set()
    for tid in held:
        await wait_status(cluster.a, tid, S.COMPLETED)
    assert by_id(await cluster.api_a.json("/nodes"))[str(cluster.a.node_id)]["running"] == 0


async def test_a_node_that_stops_heartbeating_is_shown_dead(cluster: Cluster) -> None:
    await stop_heartbeats(cluster.b)
    await asyncio.sleep(LEASE.total_seconds() + 0.3)
    seen = by_id(await cluster.api_a.json("/nodes"))
    assert seen[str(cluster.b.node_id)]["alive"] is False
    assert seen[str(cluster.a.node_id)]["alive"] is True


async def test_task_dtos_carry_their_owner_node(cluster: Cluster) -> None:
    on_a = await cluster.a.dispatcher.dispatch(tasks.Work(n=1), timedelta(hours=1))
    on_b = await cluster.b.dispatcher.dispatch(tasks.Work(n=2), timedelta(hours=1))
    page = await cluster.api_a.json("/tasks")
    owners = {item["id"]: item["ownerNode"] for item in page["items"]}
    assert owners == {str(on_a): str(cluster.a.node_id), str(on_b): str(cluster.b.node_id)}
    detail = await cluster.api_b.json(f"/tasks/{on_a}")
    assert detail["ownerNode"] == str(cluster.a.node_id)


async def test_a_dispatch_only_host_and_its_unowned_rows(tmp_path: Path) -> None:
    storage = MemoryTaskStorage()
    built = await _started(tmp_path, storage, options=lambda o: o.set_run_workers(False))
    api = Api(parent_app(built.host))
    try:
        await api.login()
        tid = await built.host.dispatcher.dispatch(tasks.Work(n=3))
        assert (await api.json(f"/tasks/{tid}"))["ownerNode"] is None
        assert (await api.json("/tasks"))["items"][0]["ownerNode"] is None
        [node] = await api.json("/nodes")
        assert node["runsWorkers"] is False and node["queues"] == []
        assert node["isCurrent"] is True and node["alive"] is True and node["running"] == 0
    finally:
        await api.aclose()
        await built.close()


async def test_standalone_lists_nodes_without_a_current_one(cluster: Cluster) -> None:
    options = MonitoringOptions().set_credentials(USERNAME, PASSWORD).set_jwt_secret(SECRET)
    api = Api(create_standalone_app(cluster.storage, options))
    try:
        await api.login()
        nodes = await api.json("/nodes")
        assert {n["id"] for n in nodes} == {str(cluster.a.node_id), str(cluster.b.node_id)}
        for node in nodes:
            assert node["alive"] is True and node["isCurrent"] is False
            assert node["running"] is None
    finally:
        await api.aclose()


async def test_nodes_needs_a_login(cluster: Cluster) -> None:
    cluster.api_a.token = None
    assert (await cluster.api_a.get("/nodes")).status_code == 401
