"""``evertask nodes``: the hosts registered on a database (the cluster's nodes)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from evertask.clock import utc_now
from evertask.storage.models import NodeInfo

from .output import echo_json, format_time, print_table
from .storage import open_storage, storage_options

__all__ = ["nodes"]


@click.command()
@storage_options
@click.option("--alive", "only_alive", is_flag=True, help="Only nodes whose lease is valid.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def nodes(url: str, schema: str | None, only_alive: bool, as_json: bool) -> None:
    """List the nodes (hosts) registered on the database, oldest first; a node is alive
    while its lease is valid."""

    async def go() -> list[NodeInfo]:
        async with open_storage(url, schema) as storage:
            return await storage.list_nodes()

    infos = asyncio.run(go())
    now = utc_now()
    if only_alive:
        infos = [n for n in infos if n.is_alive(now)]
    if as_json:
        items: list[dict[str, Any]] = [
            {
                "id": n.id,
                "host_name": n.host_name,
                "pid": n.pid,
                "started_at_utc": n.started_at_utc,
                "last_heartbeat_utc": n.last_heartbeat_utc,
                "lease_expires_utc": n.lease_expires_utc,
                "queues": list(n.queues),
                "runs_workers": n.runs_workers,
                "alive": n.is_alive(now),
            }
            for n in infos
        ]
        echo_json(items)
        return
    print_table(
        None,
        ["Node", "Host", "PID", "Role", "Alive", "Started (UTC)", "Last heartbeat", "Queues"],
        (
            [
                n.id,
                n.host_name,
                n.pid,
                "worker" if n.runs_workers else "dispatch-only",
                "yes" if n.is_alive(now) else "no (dead)",
                format_time(n.started_at_utc),
                format_time(n.last_heartbeat_utc),
                ", ".join(n.queues) or "-",
            ]
            for n in infos
        ),
        caption=f"{len(infos)} node(s)",
    )
