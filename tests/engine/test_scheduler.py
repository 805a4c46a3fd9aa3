"""The timer scheduler: one heap, one timer, latest-wins per id, driven by a manual clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from evertask import ManualClock
from evertask.registry import HandlerRegistry
from evertask.run import TaskRun
from evertask.scheduler import TimerScheduler
from evertask_abstractions import AuditLevel
from tests.engine.tasks import Ping, PingHandler

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(n: int, tid: uuid.UUID | None = None) -> TaskRun:
    reg = HandlerRegistry()
    desc = reg.add(PingHandler)
    assert desc is not None
    return TaskRun(
        id=tid or uuid.uuid4(),
        task=Ping(n=n),
        descriptor=desc,
        queue_name="default",
        audit_level=AuditLevel.FULL,
    )


def test_fires_in_time_order_with_one_timer() -> None:
    clock = ManualClock(T0)
    fired: list[int] = []
    s = TimerScheduler(clock, lambda runs: fired.extend(r.task.n for r in runs))  # type: ignore[attr-defined]
    s.start()
    for n, sec in [(3, 30), (1, 10), (2, 20)]:
        s.schedule(_run(n), T0 + timedelta(seconds=sec))
    assert clock.pending_timers == 1  # never more than one armed timer
    clock.advance(15)
    assert fired == [1]
    clock.advance(20)
    assert fired == [1, 2, 3]
    assert clock.pending_timers == 0 and len(s) == 0  # nothing armed when idle


def test_latest_wins_per_task_id() -> None:
    clock = ManualClock(T0)
    fired: list[int] = []
    s = TimerScheduler(clock, lambda runs: fired.extend(r.task.n for r in runs))  # type: ignore[attr-defined]
    s.start()
    tid = uuid.uuid4()
    s.schedule(_run(1, tid), T0 + timedelta(seconds=10))
    s.schedule(_run(2, tid), T0 + timedelta(seconds=5))
    s.schedule(_run(3, tid), T0 + timedelta(seconds=20))
    assert len(s) == 1
    clock.advance(60)
    assert fired == [3]


def test_unschedule_and_stop() -> None:
    clock = ManualClock(T0)
    fired: list[int] = []
    s = TimerScheduler(clock, lambda runs: fired.extend(r.task.n for r in runs))  # type: ignore[attr-defined]
    s.start()
    a, b = _run(1), _run(2)
    s.schedule(a, T0 + timedelta(seconds=1))
    s.schedule(b, T0 + timedelta(seconds=2))
    assert s.unschedule(a.id) and not s.unschedule(a.id)
    assert s.next_due() == T0 + timedelta(seconds=2)
    left = s.stop()
    assert [r.task.n for r in left] == [2]  # type: ignore[attr-defined]
    clock.advance(10)
    assert fired == []


def test_entries_before_start_fire_once_started() -> None:
    clock = ManualClock(T0)
    fired: list[int] = []
    s = TimerScheduler(clock, lambda runs: fired.extend(r.task.n for r in runs))  # type: ignore[attr-defined]
    s.schedule(_run(1), T0 - timedelta(seconds=1))
    clock.advance(1)
    assert fired == []
    s.start()
    clock.advance(0)
    assert fired == [1]


def test_stale_entries_are_compacted() -> None:
    clock = ManualClock(T0)
    s = TimerScheduler(clock, lambda runs: None)
    s.start()
    tid = uuid.uuid4()
    for i in range(5000):
        s.schedule(_run(i, tid), T0 + timedelta(seconds=i + 1))
    assert len(s) == 1 and len(s._heap) < 2100


def test_a_lead_fires_early_with_the_due_time() -> None:
    clock = ManualClock(T0)
    fired: list[TaskRun] = []
    s = TimerScheduler(clock, fired.extend, lead=timedelta(milliseconds=20))
    s.start()
    due = T0 + timedelta(seconds=10)
    s.schedule(_run(1), due)
    s.schedule(_run(2), due + timedelta(milliseconds=50))
    clock.set(due - timedelta(milliseconds=21))
    assert fired == []
    clock.set(due - timedelta(milliseconds=20))
    assert [r.due_at for r in fired] == [due]  # handed over early, with its own time
    clock.set(due + timedelta(milliseconds=30))
    assert [r.due_at for r in fired] == [due, due + timedelta(milliseconds=50)]
    with pytest.raises(ValueError, match="lead"):
        TimerScheduler(clock, fired.extend, lead=timedelta(seconds=-1))
