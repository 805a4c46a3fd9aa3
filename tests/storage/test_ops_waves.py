"""A batch's waves: cut where a task id or key repeats; removals and updates alone."""

from __future__ import annotations

import uuid
from typing import Any

from evertask_storage_efcore_like.ops import Op, RemoveOp, waves


class _Write(Op):
    """A write of one row (or none) and maybe a task key."""

    def __init__(self, task_id: uuid.UUID | None, key: str | None = None) -> None:
        self.task_id, self.key = task_id, key

    def target_id(self) -> uuid.UUID | None:
        return self.task_id

    def target_key(self) -> str | None:
        return self.key

    def steps(self) -> Any:
        raise NotImplementedError


def test_a_repeated_id_or_key_starts_a_wave() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ops = [
        _Write(a),
        _Write(b, "k"),
        _Write(None),
        _Write(None),  # no row: never cuts
        _Write(uuid.UUID(int=a.int)),  # the same id as another object
        _Write(c, "k"),
        _Write(b),  # b's wave has ended: no cut
        _Write(c),
    ]
    assert list(waves(ops)) == [[0, 1, 2, 3], [4, 5, 6], [7]]


def test_removals_stand_alone() -> None:
    ops = [_Write(uuid.uuid4()), RemoveOp(uuid.uuid4()), _Write(uuid.uuid4()), _Write(None)]
    assert list(waves(ops)) == [[0], [1], [2, 3]]
    assert list(waves([])) == []
