"""The methods every dispatched and every executed task runs through make no closure cells.

CPython makes a cell for each variable a nested function captures at *every* call of the
enclosing function, whether the nested function is built or not; cells are tracked by the
garbage collector, whose collections take 13 to 20% of a busy worker's CPU time
(docs/benchmarks.md, storage). A closure belongs in a helper called only when it is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evertask.dispatcher import Dispatcher
from evertask.executor import WorkerExecutor
from evertask.queues import QueueManager, WorkerQueue
from evertask_storage_efcore_like.storage import SqlTaskStorage
from evertask_storage_efcore_like.writer import GroupCommitWriter

HOT: list[Callable[..., Any]] = [
    Dispatcher.dispatch,
    Dispatcher._dispatch_new,
    Dispatcher._reserve,
    Dispatcher._make_run,
    Dispatcher._make_row,
    QueueManager.reserve_for_dispatch,
    WorkerQueue.reserve,
    WorkerExecutor._launch,
    WorkerExecutor._execute,
    WorkerExecutor._run,
    WorkerExecutor._attempt_fn,
    WorkerExecutor._invoke,
    WorkerExecutor._finish,
    SqlTaskStorage.persist,
    SqlTaskStorage.begin_in_progress,
    SqlTaskStorage.withdraw_in_progress,
    SqlTaskStorage.set_completed,
    GroupCommitWriter.submit,
]


@pytest.mark.parametrize("method", HOT, ids=lambda m: m.__qualname__)
def test_a_hot_method_makes_no_cells(method: Callable[..., Any]) -> None:
    assert method.__code__.co_cellvars == (), (
        f"{method.__qualname__} captures {method.__code__.co_cellvars} in a closure: every "
        "call makes a cell per name; move the closure into a helper (or use a partial)."
    )
