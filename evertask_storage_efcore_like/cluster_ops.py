"""The writes of cluster mode as operations (see :mod:`.ops`): node rows and claims.

The storage runs each in a short transaction of its own (SQLite: through its one
writer, see :meth:`.SqlTaskStorage._transact`). The executors return ids as their
drivers do (SQLite: text), so the claim normalises them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .ops import Op, Step, StepGen, StepMode
from .retention_ops import as_uuid
from .statements import claim_candidates_name

__all__ = ["ClaimOrphansOp", "ClusterStatementOp", "DeregisterNodeOp"]


@dataclass(slots=True, frozen=True)
class ClusterStatementOp(Op):
    """One statement of the cluster (a node row, a lease, a one-row claim); returns its
    row count."""

    statement: str  # its name in Statements
    params: dict[str, Any]

    def steps(self) -> StepGen:
        return (yield Step(self.statement, self.params))


@dataclass(slots=True, frozen=True)
class DeregisterNodeOp(Op):
    """Release the node's recoverable rows and delete its row; returns how many rows were
    released."""

    node_id: uuid.UUID
    now: datetime

    heavy = True  # it grows with the node's pending rows: SQLite runs it on the writer's thread

    def steps(self) -> StepGen:
        released = yield Step("release_node_rows", {"id": self.node_id, "now": self.now})
        yield Step("delete_node", {"id": self.node_id})
        return int(released)


@dataclass(slots=True, frozen=True)
class ClaimOrphansOp(Op):
    """Own up to ``take`` recoverable rows without a live owner, oldest first; returns
    the ids of the candidates claimed (see :meth:`.SqlTaskStorage.claim_orphans`)."""

    node_id: uuid.UUID
    now: datetime
    take: int
    due_before: datetime | None

    heavy = True  # it grows with ``take``: SQLite runs it on the writer's thread

    def steps(self) -> StepGen:
        dead_rows = yield Step("select_dead_nodes", {"now": self.now}, StepMode.ROWS)
        dead = [as_uuid(node) for (node,) in dead_rows]
        dead = [node for node in dead if node != self.node_id]
        params: dict[str, Any] = {"now": self.now, "take": self.take}
        if dead:
            params["dead"] = dead
        due = self.due_before is not None
        if due:
            params["due"] = self.due_before
        candidates = yield Step(claim_candidates_name(bool(dead), due), params, StepMode.ROWS)
        ids = [as_uuid(task_id) for (task_id,) in candidates]
        if ids:
            yield Step("claim_rows", {"ids": ids, "node": self.node_id, "now": self.now})
        return ids
