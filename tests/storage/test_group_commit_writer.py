"""The group-commit writer: batches in submission order, at most ``max_batch`` each, and
withdrawals of writes no batch has taken."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from evertask_storage_efcore_like.ops import Op
from evertask_storage_efcore_like.writer import GroupCommitWriter

from .helpers import NamedOp


class _Recording:
    """Records each batch's operation names; the first batch waits for ``release``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()

    async def execute(self, ops: Sequence[Op]) -> list[Any]:
        names = [op.name for op in ops]  # type: ignore[attr-defined]
        self.batches.append(names)
        if len(self.batches) == 1:
            await self.release.wait()
        return [f"done {name}" for name in names]

    def map_error(self, op: Op, error: BaseException) -> BaseException:
        return error

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def _held(max_batch: int) -> AsyncIterator[tuple[GroupCommitWriter, _Recording, Any]]:
    """A started writer whose first batch (the write "a", its future third in what it yields) is
    being committed and waits for ``release``: what is submitted meanwhile waits too."""
    executor = _Recording()
    writer = GroupCommitWriter(executor, max_batch=max_batch, max_delay=0)
    writer.start()
    try:
        first = writer.submit(NamedOp("a"))
        async with asyncio.timeout(5):
            while not executor.batches:
                await asyncio.sleep(0)
        yield writer, executor, first
    finally:
        await writer.close()


async def test_batches_keep_submission_order_and_max_batch() -> None:
    async with _held(max_batch=2) as (writer, executor, first):
        futures = [writer.submit(NamedOp(name)) for name in "bcdef"]
        executor.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *futures), 5)
    assert executor.batches == [["a"], ["b", "c"], ["d", "e"], ["f"]]
    assert results == [f"done {name}" for name in "abcdef"]


async def test_a_withdrawn_write_leaves_its_batch_and_resolves_with_none() -> None:
    async with _held(max_batch=10) as (writer, executor, first):
        b, c, d = (writer.submit(NamedOp(name)) for name in "bcd")
        withdrawn = writer.withdraw(c)
        assert isinstance(withdrawn, NamedOp) and withdrawn.name == "c"
        assert c.result() is None
        assert writer.withdraw(c) is None  # only once
        assert writer.withdraw(first) is None  # already taken by a batch
        executor.release.set()
        assert await asyncio.wait_for(asyncio.gather(first, b, d), 5) == [
            "done a",
            "done b",
            "done d",
        ]
    assert executor.batches == [["a"], ["b", "d"]]
