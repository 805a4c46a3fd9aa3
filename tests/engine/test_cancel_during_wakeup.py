"""A task cancelled just as its wait ends is cancelled (Python 3.11's wait_for returned
normally then, and the cluster's poll loop, which naps between polls, never stopped)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from evertask.cluster import Membership


@pytest.mark.parametrize("timeout", [5.0, None])
async def test_a_nap_cancelled_as_it_is_woken_raises_cancelled(timeout: float | None) -> None:
    swallowed = 0
    for _ in range(50):
        holder = SimpleNamespace(_wake=asyncio.Event())
        nap = asyncio.ensure_future(Membership._nap(holder, timeout))  # type: ignore[arg-type]
        for _ in range(3):  # into the wait
            await asyncio.sleep(0)
        holder._wake.set()  # a heartbeat's nudge...
        nap.cancel()  # ...and the host stopping, at the same moment
        try:
            await nap
        except asyncio.CancelledError:
            continue
        swallowed += 1
    assert swallowed == 0
