"""REST routes of the monitoring API, one module per area."""

from . import auth, batches, config, dashboard, nodes, queues, ratelimits, statistics, tasks

__all__ = [
    "auth",
    "batches",
    "config",
    "dashboard",
    "nodes",
    "queues",
    "ratelimits",
    "statistics",
    "tasks",
]
