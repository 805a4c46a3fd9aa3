"""Monitoring API latency over 1,000,000 task rows in SQLite and PostgreSQL.

``python -m benchmarks monitor [--quick] [--json FILE]``

Rows are bulk-loaded (SQLAlchemy executemany into SQLite, ``COPY`` into PostgreSQL),
spread over the last 30 days: 90% Completed, 5% Failed, 2% WaitingQueue, 1% Queued,
1% Cancelled, 1% InProgress, on three queues and eight task types; 10% of the tasks have
three status audits and 2% have five captured log lines. Each figure is measured through
the HTTP API (in-process ASGI, token auth, JSON serialisation included) against the
read-only monitoring app over the storage.

Bars: task list (page 1, status filter) and task detail p95 < 50 ms, overview p95 < 250 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .common import Results, percentile, report
from .history import fold_counts

__all__ = ["run"]

ROWS = 1_000_000
QUICK_ROWS = 100_000
SAMPLES = 60
QUICK_SAMPLES = 25
CHUNK = 20_000
BASE = "/evertask-monitoring/api"
STATUSES = (
    ["Completed"] * 90
    + ["Failed"] * 5
    + ["WaitingQueue"] * 2
    + ["Queued", "Cancelled", "InProgress"]
)
QUEUES = ["default"] * 7 + ["reports"] * 2 + ["emails"]
TYPES = [f"app.tasks:Job{i}" for i in range(8)]


def _postgres_url() -> str:
    return os.environ.get("EVERTASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _uuid7(moment: datetime, rnd: random.Random) -> uuid.UUID:
    """A time-ordered id like the engine's (UUIDv7 for ``moment``)."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rnd.getrandbits(12) << 64) | (0b10 << 62)
    return uuid.UUID(int=value | rnd.getrandbits(62))


def _rows(count: int, now: datetime, seed: int = 7) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    span = 30 * 24 * 3600.0
    for i in range(count):
        created = now - timedelta(seconds=span * (count - i) / count)
        status = STATUSES[rnd.randrange(len(STATUSES))]
        finished = status in ("Completed", "Failed")
        ms = rnd.uniform(1, 500)
        scheduled = created + timedelta(hours=1) if status == "WaitingQueue" else None
        yield {
            "Id": _uuid7(created, rnd),
            "CreatedAtUtc": created,
            "LastExecutionUtc": created + timedelta(milliseconds=ms) if finished else None,
            "ExecutionTimeMs": ms if finished else 0.0,
            "ScheduledExecutionUtc": scheduled,
            "Type": TYPES[i % len(TYPES)],
            "Request": json.dumps({"n": i}),
            "Handler": TYPES[i % len(TYPES)] + "Handler",
            "Exception": "ValueError: boom\n  at handler" if status == "Failed" else None,
            "IsRecurring": False,
            "RecurringTask": None,
            "RecurringInfo": None,
            "CurrentRunCount": None,
            "MaxRuns": None,
            "RunUntil": None,
            "NextRunUtc": None,
            "QueueName": QUEUES[i % len(QUEUES)],
            "TaskKey": None,
            "AuditLevel": 0,
            "RecoveryDispatchFailureCount": 0,
            "Status": status,
            "TraceContext": None,
            "RetriedFrom": None,
        }


def _children(
    tasks: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    audits: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    for n, row in enumerate(tasks):
        if n % 10:
            continue
        at = row["CreatedAtUtc"]
        for k, status in enumerate(("Queued", "InProgress", row["Status"])):
            audits.append(
                {
                    "QueuedTaskId": row["Id"],
                    "UpdatedAtUtc": at + timedelta(milliseconds=k),
                    "NewStatus": status,
                    "Exception": row["Exception"] if k == 2 else None,
                }
            )
        if n % 50 == 0:
            for k in range(5):
                logs.append(
                    {
                        "Id": uuid.UUID(int=row["Id"].int + k + 1),
                        "TaskId": row["Id"],
                        "TimestampUtc": at + timedelta(milliseconds=k),
                        "Level": "Warning" if k == 3 else "Information",
                        "Message": f"step {k} of task {n}",
                        "ExceptionDetails": None,
                        "SequenceNumber": k,
                    }
                )
    return audits, logs


# -- loaders ---------------------------------------------------------------------------------
def _load_sqlite(path: Path, tables: Any, count: int, now: datetime) -> list[uuid.UUID]:
    from sqlalchemy import create_engine, event, text

    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _fast(dbapi: Any, _record: Any) -> None:
        dbapi.execute("PRAGMA journal_mode = WAL")
        dbapi.execute("PRAGMA synchronous = OFF")

    detail_ids: list[uuid.UUID] = []
    with engine.begin() as conn:
        rows = _rows(count, now)
        while True:
            chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            conn.execute(tables.tasks.insert(), chunk)
            audits, logs = _children(chunk)
            conn.execute(tables.status_audit.insert(), audits)
            if logs:
                conn.execute(tables.logs.insert(), logs)
                detail_ids.extend(log["TaskId"] for log in logs[::5])
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return detail_ids


async def _load_postgres(
    url: str, schema: str, tables: Any, count: int, now: datetime
) -> list[uuid.UUID]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    detail_ids: list[uuid.UUID] = []
    try:
        audit_columns = ["QueuedTaskId", "UpdatedAtUtc", "NewStatus", "Exception"]
        log_columns = [c.name for c in tables.logs.columns]
        rows = _rows(count, now)
        while True:
            chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            # the columns the rows fill: the others (added by later migrations) take their
            # defaults, as in the SQLite loader's inserts
            columns = [c.name for c in tables.tasks.columns if c.name in chunk[0]]
            await conn.copy_records_to_table(
                "QueuedTasks",
                records=[tuple(r[c] for c in columns) for r in chunk],
                columns=columns,
                schema_name=schema,
            )
            audits, logs = _children(chunk)
            await conn.copy_records_to_table(
                "StatusAudit",
                records=[tuple(a[c] for c in audit_columns) for a in audits],
                columns=audit_columns,
                schema_name=schema,
            )
            if logs:
                await conn.copy_records_to_table(
                    "TaskExecutionLogs",
                    records=[tuple(entry[c] for c in log_columns) for entry in logs],
                    columns=log_columns,
                    schema_name=schema,
                )
                detail_ids.extend(entry["TaskId"] for entry in logs[::5])
        await conn.execute(f'VACUUM ANALYZE "{schema}"."QueuedTasks"')
        await conn.execute(f'ANALYZE "{schema}"."StatusAudit"')
        await conn.execute(f'ANALYZE "{schema}"."TaskExecutionLogs"')
    finally:
        await conn.close()
    return detail_ids


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# -- measurement -----------------------------------------------------------------------------
async def ready(storage: Any) -> float:
    """Fold the count deltas the bulk load left (its inserts fire the count triggers), as
    a running host folds them every second; the seconds that took. Measuring before would
    time the counts over a million pending deltas, a state no running host is in."""
    start = time.perf_counter()
    await fold_counts(storage)
    return time.perf_counter() - start


async def _time(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    for _ in range(3):
        await call()
    out: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def _measure(storage: Any, detail_ids: list[uuid.UUID], samples: int) -> Results:
    import httpx
    from fastapi import FastAPI

    from evertask_monitor_api import MonitoringOptions, create_monitoring_app

    options = MonitoringOptions(username="bench", password="bench-password", jwt_secret="b" * 48)
    monitor = create_monitoring_app(storage, options)
    app = FastAPI()
    app.mount("/evertask-monitoring", monitor)
    transport = httpx.ASGITransport(app=app)
    results: Results = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        login = await client.post(
            f"{BASE}/auth/login", json={"username": "bench", "password": "bench-password"}
        )
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        ids = iter(detail_ids * (samples // max(1, len(detail_ids)) + 2))

        async def get(path: str, **params: Any) -> Any:
            response = await client.get(f"{BASE}{path}", params=params)
            response.raise_for_status()
            return response.json()

        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            "list": lambda: get("/tasks", statuses="Failed"),
            "list_completed": lambda: get("/tasks", statuses="Completed"),
            "list_unfiltered": lambda: get("/tasks"),
            "detail": lambda: get(f"/tasks/{next(ids)}"),
            "overview": lambda: get("/dashboard/overview"),
        }
        for name, call in cases.items():
            times = await _time(call, samples)
            results[f"{name}_p50_ms"] = round(percentile(times, 50), 2)
            results[f"{name}_p95_ms"] = round(percentile(times, 95), 2)
        detail = await get(f"/tasks/{detail_ids[0]}")
        assert detail["statusAudits"] and detail["executionLogCount"] == 5, detail
    return results


async def _sqlite(count: int, samples: int, now: datetime) -> Results:
    from evertask_storage_sqlite import SqliteTaskStorage

    with tempfile.TemporaryDirectory(prefix="evertask-monitor-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        storage = SqliteTaskStorage(path)
        await storage.open()
        await storage.close()
        start = time.perf_counter()
        detail_ids = await asyncio.to_thread(_load_sqlite, path, storage.tables, count, now)
        load_s = time.perf_counter() - start
        storage = SqliteTaskStorage(path, auto_apply_migrations=False)
        await storage.open()
        try:
            fold_s = await ready(storage)
            results = await _measure(storage, detail_ids, samples)
        finally:
            await storage.close()
    return {"load_s": round(load_s, 1), "fold_s": round(fold_s, 1), **results}


async def _postgres(count: int, samples: int, now: datetime) -> Results | str:
    try:
        from evertask_storage_postgres import PostgresTaskStorage
    except ImportError as error:
        return f"evertask_storage_postgres is not importable ({error})"
    url = _postgres_url()
    schema = f"bench_monitor_{uuid.uuid4().hex[:8]}"
    storage = PostgresTaskStorage(url, schema=schema)
    try:
        await storage.open()
    except Exception as error:  # report why the PostgreSQL half is missing
        return f"PostgreSQL at {url} is not reachable ({error})"
    await storage.close()
    try:
        start = time.perf_counter()
        detail_ids = await _load_postgres(url, schema, storage.tables, count, now)
        load_s = time.perf_counter() - start
        storage = PostgresTaskStorage(url, schema=schema, auto_apply_migrations=False)
        await storage.open()
        try:
            fold_s = await ready(storage)
            results = await _measure(storage, detail_ids, samples)
        finally:
            await storage.close()
    finally:
        await _drop_schema(url, schema)
    return {"load_s": round(load_s, 1), "fold_s": round(fold_s, 1), **results}


def run(quick: bool = False, json_path: str | None = None) -> Results:
    """Measure both databases in one run and print the table (and write ``json_path``)."""
    count = QUICK_ROWS if quick else ROWS
    samples = QUICK_SAMPLES if quick else SAMPLES
    now = datetime.now(UTC)
    results: Results = {"rows": float(count), "samples": float(samples)}
    notes: list[str] = []
    for name, bench in (("sqlite", _sqlite), ("postgres", _postgres)):
        outcome = asyncio.run(bench(count, samples, now))
        if isinstance(outcome, str):
            notes.append(f"{name}: skipped, {outcome}")
            continue
        results.update({f"{name}_{key}": value for key, value in outcome.items()})
    rows: list[tuple[str, str]] = [("rows", f"{count:,}"), ("samples per figure", str(samples))]
    bars = {"list": 50.0, "detail": 50.0, "overview": 250.0}
    for db in ("sqlite", "postgres"):
        if f"{db}_list_p95_ms" not in results:
            continue
        rows.append((f"{db} bulk load", f"{results[f'{db}_load_s']:.1f} s"))
        rows.append((f"{db} fold of its count deltas", f"{results[f'{db}_fold_s']:.1f} s"))
        for case in ("list", "list_completed", "list_unfiltered", "detail", "overview"):
            p50, p95 = results[f"{db}_{case}_p50_ms"], results[f"{db}_{case}_p95_ms"]
            bar = bars.get(case)
            verdict = (
                "" if bar is None else ("  ok" if p95 < bar else f"  OVER the {bar:.0f} ms bar")
            )
            rows.append((f"{db} {case} p50 / p95", f"{p50:.2f} / {p95:.2f} ms{verdict}"))
    rows.extend(("note", n) for n in notes)
    report("Monitoring API latency", rows, results, json_path)
    return results
