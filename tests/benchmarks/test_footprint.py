"""The footprint suite measures what it says: audit rows cost bytes, compaction counts."""

from __future__ import annotations

import asyncio

from benchmarks import footprint
from evertask_abstractions import AuditLevel


def test_full_audit_costs_more_than_none_on_sqlite() -> None:
    none = asyncio.run(footprint._run("sqlite", AuditLevel.NONE, 400))
    full = asyncio.run(footprint._run("sqlite", AuditLevel.FULL, 400))
    assert 100 < none < full  # three status-audit rows a task at Full
