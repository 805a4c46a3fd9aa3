"""Contract: captured execution logs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from evertask.ids import uuid7, uuid7_int
from evertask.storage import TaskExecutionLog, TaskStorage
from evertask.storage.models import ExecutionLogs

from .conftest import Clock
from .helpers import row

LEVELS = ("Information", "Warning", "Error", "Debug")


async def _seed(storage: TaskStorage, clock: Clock) -> tuple[uuid.UUID, list[TaskExecutionLog]]:
    task = row(clock.now)
    await storage.persist(task)
    logs: list[TaskExecutionLog] = []
    for run in range(2):  # two executions, sequence numbers restart
        batch = [
            TaskExecutionLog(
                id=uuid7(),
                task_id=task.id,
                timestamp_utc=clock.now + timedelta(seconds=run, milliseconds=i // 3),
                level=LEVELS[i % len(LEVELS)],
                message=f"run {run} line {i}",
                sequence_number=i,
                exception_details="Traceback ..." if i % len(LEVELS) == 2 else None,
            )
            for i in range(9)
        ]
        await storage.save_execution_logs(task.id, batch)
        logs.extend(batch)
    return task.id, logs


async def test_logs_come_back_in_capture_order(storage: TaskStorage, clock: Clock) -> None:
    task_id, logs = await _seed(storage, clock)
    assert await storage.get_execution_logs(task_id) == logs
    assert await storage.count_execution_logs(task_id) == len(logs)


async def test_captured_logs_come_back_as_their_rows(storage: TaskStorage, clock: Clock) -> None:
    """What the engine saves: ExecutionLogs, plain tuples whose rows are built when read
    (the memory storage keeps the tuples), before and after rows saved as rows."""
    task = row(clock.now)
    await storage.persist(task)
    start = clock.now.timestamp()
    captured = ExecutionLogs(
        task.id,
        [
            (uuid7_int(), start + 1.25, "Information", "captured 0", None),
            (uuid7_int(), start + 1.5, "Error", "captured 1", "Traceback ..."),
        ],
    )
    rows = list(captured)
    assert rows == list(captured) == [captured[0], captured[-1]] == captured[:]
    assert [r.sequence_number for r in rows] == [0, 1] and captured[-1:] == rows[1:]
    plain = [
        TaskExecutionLog(
            id=uuid7(),
            task_id=task.id,
            timestamp_utc=clock.now + timedelta(seconds=run * 2),
            level="Warning",
            message=f"plain {run}",
            sequence_number=0,
        )
        for run in range(2)
    ]
    await storage.save_execution_logs(task.id, plain[:1])
    await storage.save_execution_logs(task.id, captured)
    await storage.save_execution_logs(task.id, plain[1:])
    assert await storage.get_execution_logs(task.id) == [plain[0], *rows, plain[1]]
    assert await storage.get_execution_logs(task.id, 2, 1) == rows[1:]
    assert await storage.get_execution_logs(task.id, level="error") == rows[1:]
    assert await storage.count_execution_logs(task.id) == 4


async def test_log_paging(storage: TaskStorage, clock: Clock) -> None:
    task_id, logs = await _seed(storage, clock)
    assert await storage.get_execution_logs(task_id, 0, 5) == logs[:5]
    assert await storage.get_execution_logs(task_id, 5, 5) == logs[5:10]
    assert await storage.get_execution_logs(task_id, 15, 5) == logs[15:]
    assert await storage.get_execution_logs(task_id, 18, 5) == []
    assert await storage.get_execution_logs(task_id, 3) == logs[3:]
    assert await storage.get_execution_logs(task_id, 0, 0) == []


async def test_log_level_filter_is_case_insensitive(storage: TaskStorage, clock: Clock) -> None:
    task_id, logs = await _seed(storage, clock)
    errors = [log for log in logs if log.level == "Error"]
    assert await storage.get_execution_logs(task_id, level="error") == errors
    assert await storage.count_execution_logs(task_id, "ERROR") == len(errors)
    assert await storage.get_execution_logs(task_id, 1, 2, "Error") == errors[1:3]
    assert await storage.count_execution_logs(task_id, "Critical") == 0


async def test_saving_no_logs_or_logs_of_a_missing_task_is_a_no_op(
    storage: TaskStorage, clock: Clock
) -> None:
    task = row(clock.now)
    await storage.persist(task)
    await storage.save_execution_logs(task.id, [])
    missing = uuid7()
    await storage.save_execution_logs(
        missing,
        [
            TaskExecutionLog(
                id=uuid7(),
                task_id=missing,
                timestamp_utc=clock.now,
                level="Information",
                message="x",
                sequence_number=0,
            )
        ],
    )
    assert await storage.count_execution_logs(task.id) == 0
    assert await storage.get_execution_logs(missing) == []


async def test_long_messages_are_cut_to_the_column(sql_storage: TaskStorage, clock: Clock) -> None:
    task = row(clock.now)
    await sql_storage.persist(task)
    log = TaskExecutionLog(
        id=uuid7(),
        task_id=task.id,
        timestamp_utc=clock.now,
        level="Information",
        message="x" * 5000,
        sequence_number=0,
    )
    await sql_storage.save_execution_logs(task.id, [log])
    (stored,) = await sql_storage.get_execution_logs(task.id)
    assert len(stored.message) == 4000 and stored.message.endswith("\u2026")
