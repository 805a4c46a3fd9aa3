"""SQLite's set-based fast path: the same step of many operations as one statement.

A batch of the group-commit writer holds the writes of many tasks: for each, its row's
insert, or its status update, audit rows and the read of what its end releases. Run
one by one, each is a statement, and each statement hands the GIL to the event loop
and takes it back (sqlite3 releases it around every step): when the loop is busy that
handoff costs more CPU than the statement (storage suite, docs/benchmarks.md). So the
executor runs the operations of a *wave* (no task id or key twice:
:func:`~evertask_storage_efcore_like.ops.waves`; a batch too small to group runs one by
one, and maintenance runs alone where it stands, between the waves of the writes before
and after it) side by side: each round takes every
operation's next step, and the steps named in :data:`GROUPED` run as one statement per
name (a multi-row ``INSERT``); an operation whose next step is anything else finishes
afterwards, one by one in batch order, as :func:`~evertask_storage_efcore_like.ops.drive`
would run it.

New rows, status writes and saved logs (:class:`~evertask_storage_efcore_like.ops.PersistOp`,
:class:`~evertask_storage_efcore_like.ops.TransitionOp`,
:class:`~evertask_storage_efcore_like.ops.SaveLogsOp`: most of a busy worker's writes)
skip the rounds when a wave holds enough of them. The rows are one insert, then their
audit rows one more. The logs are one read of which tasks still exist, then one insert of
their records. The status writes are one update that returns, with each changed
row's id, the batch and workflow it counts in; their audit rows one insert; and one read
finds which of the terminal ones have continuations waiting. Only those, and the members
of a batch or workflow not counted yet, go on with their remaining steps (``finish``) one
by one, like the rest. That is what their ``steps`` do (for a status write: the update,
the audit rows, the probe of :func:`~evertask_storage_efcore_like.ops.finish_steps`),
without a round per step.

The operations of a batch were submitted concurrently by different callers, so any
serial order of them is a valid outcome; the grouped steps touch only the operation's
own row (by id, distinct within a wave), append audit rows or read, so running them
first is the serial order "each grouped prefix, then the rest". Other processes on the
same file see none of it: the batch is still one ``BEGIN IMMEDIATE`` transaction, which
SQLite serialises with theirs. A declared fast path:
with ``EVERTASK_FAST_PATHS=0`` the executor runs each operation alone, and the tests
compare both.
"""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, cast

from evertask_abstractions import QueuedTaskStatus
from evertask_storage_efcore_like.errors import map_integrity_error
from evertask_storage_efcore_like.ops import (
    UPDATE_ATTRIBUTES,
    Op,
    PersistOp,
    SaveLogsOp,
    Step,
    TransitionOp,
    drive,
    waves,
)
from evertask_storage_efcore_like.precompiled import PrecompiledCache
from evertask_storage_efcore_like.rows import TASK_ATTRIBUTES
from evertask_storage_efcore_like.schema import PARENT_INDEX

__all__ = [
    "GROUPED",
    "MIN_GROUP",
    "SINCE",
    "GroupedSteps",
    "existing_sql",
    "run_alone",
    "waiting_parents_sql",
]

GROUPED = frozenset({"insert_status_audit"})
"""The steps the rounds run as one statement for a whole wave (the audit rows of
compare-and-sets, recurring runs and requeues; new rows, status writes and saved logs
have statements of their own, below)."""

_CHUNKS = (64, 32, 16, 8, 4, 2, 1)
"""Rows per grouped statement: a few fixed sizes, so sqlite3's statement cache keeps
every text prepared (at most 64 rows of 29 columns, far below SQLite's 32,766 variables)."""

SINCE = (3, 35, 0)
"""The SQLite library the grouped update needs (``UPDATE ... FROM``: 3.33, ``RETURNING``:
3.35); with an older one every write runs alone."""

MIN_GROUP = 4
"""Fewer steps of a name than this run one by one: a grouped statement of one to three
rows costs more than as many plain ones (it materializes its values, and SQLite
buffers what ``RETURNING`` returns)."""

_PLACEHOLDER = re.compile(r"\?")

_MEMBERSHIP = '"Id", "BatchId", "WorkflowId", "BatchCounted"'
"""What the grouped status write of :meth:`GroupedSteps._transitions` returns per row."""

_WAITING_PARENT = QueuedTaskStatus.WAITING_PARENT.value

Runner = Callable[[Step], Any]


def _chunks(count: int) -> list[tuple[int, int]]:
    """``(start, size)`` pieces of ``count`` rows, each size one of :data:`_CHUNKS`."""
    out: list[tuple[int, int]] = []
    start = 0
    for size in _CHUNKS:
        while count - start >= size:
            out.append((start, size))
            start += size
    return out


class GroupedSteps:
    """A wave's grouped statements: those of new rows, status writes and saved logs, and
    the rounds that group the :data:`GROUPED` steps of the other operations."""

    def __init__(self, sql: PrecompiledCache) -> None:
        self._sql = sql
        self._texts: dict[tuple[str, int], str] = {}
        # a new row's and a status write's arguments, read off the row and the operation
        # (a declared fast path: Precompiled.reader gives what args() gives, tested)
        self._task_args = sql["insert_task"].reader(TASK_ATTRIBUTES)
        self._update_args = sql["update_status"].reader(UPDATE_ATTRIBUTES)
        update = sql["update_status"].sql
        self._insert_heads = {
            name: self._insert_head(sql[name].sql)
            for name in ("insert_task", "insert_status_audit", "insert_log")
        }
        # UPDATE "QueuedTasks" SET <a>=<..?..>, ... WHERE "QueuedTasks"."Id" = ?
        head, where = update.split(" WHERE ")
        if where != '"QueuedTasks"."Id" = ?' or not head.startswith('UPDATE "QueuedTasks" SET '):
            raise ValueError(f"update_status has an unexpected shape: {update}")
        columns = head.count("?") + 1
        numbered = iter(range(1, columns))
        self._update = (
            _PLACEHOLDER.sub(lambda _: f"v.column{next(numbered)}", head),
            columns,
        )

    @staticmethod
    def _insert_head(text: str) -> tuple[str, str]:
        head, values = text.split(" VALUES ")
        if not (values.startswith("(") and values.endswith(")")):
            raise ValueError(f"an insert of unexpected shape: {text}")
        return head, values

    # -- a batch, wave by wave ----------------------------------------------------------------
    def run_batch(
        self, cx: sqlite3.Connection, ops: Sequence[Op], outcomes: list[Any], run: Runner
    ) -> None:
        """Run the batch ``ops``, each outcome into ``outcomes``; ``run`` executes a step on
        its own. A batch too small to group runs one by one; maintenance runs alone where
        it stands (never reordered), and the writes between two of them are grouped."""
        if len(ops) < MIN_GROUP:
            run_alone(ops, range(len(ops)), outcomes, run)
            return
        start = 0
        for i, op in enumerate(ops):
            if op.heavy:
                self._run_span(cx, ops, start, i, outcomes, run)
                run_alone(ops, (i,), outcomes, run)
                start = i + 1
        self._run_span(cx, ops, start, len(ops), outcomes, run)

    def _run_span(
        self,
        cx: sqlite3.Connection,
        ops: Sequence[Op],
        start: int,
        stop: int,
        outcomes: list[Any],
        run: Runner,
    ) -> None:
        """The operations ``ops[start:stop]`` (none of them maintenance), wave by wave."""
        for wave in waves(ops[start:stop]):
            self._run_wave(cx, ops, [start + k for k in wave], outcomes, run)

    def _run_wave(
        self,
        cx: sqlite3.Connection,
        ops: Sequence[Op],
        wave: Sequence[int],
        outcomes: list[Any],
        run: Runner,
    ) -> None:
        if len(wave) < MIN_GROUP:  # no step can have enough company
            run_alone(ops, wave, outcomes, run)
            return
        pending: dict[int, tuple[Generator[Step, Any, Any], Step]] = {}
        rest: dict[int, tuple[Generator[Step, Any, Any], Step]] = {}
        persists = [i for i in wave if type(ops[i]) is PersistOp]
        transitions = [i for i in wave if _plain_transition(ops[i])]
        saves = [i for i in wave if type(ops[i]) is SaveLogsOp]
        taken: set[int] = set()
        if len(persists) >= MIN_GROUP:
            self._persists(cx, ops, persists, outcomes)
            taken.update(persists)
        if len(saves) >= MIN_GROUP:
            self._save_logs(cx, ops, saves)
            taken.update(saves)
        if len(transitions) >= MIN_GROUP:
            self._transitions(cx, ops, transitions, outcomes, rest)
            taken.update(transitions)
        if taken:
            wave = [i for i in wave if i not in taken]
        for i in wave:
            self._advance(i, ops[i].steps(), None, pending, outcomes)
        while pending:
            groups: dict[str, list[int]] = {}
            for i, (_, step) in list(pending.items()):
                if step.name in GROUPED:
                    groups.setdefault(step.name, []).append(i)
                else:
                    rest[i] = pending.pop(i)
            results: dict[int, Any] = {}
            for name, members in groups.items():
                steps = [pending[i][1] for i in members]
                results.update(zip(members, self._group(cx, name, steps, run), strict=True))
            for i in list(pending):
                gen, _ = pending.pop(i)
                result = results[i]
                if isinstance(result, sqlite3.IntegrityError):
                    gen.close()
                    outcomes[i] = _failure(ops[i], result)
                    continue
                self._advance(i, gen, result, pending, outcomes)
        for i in sorted(rest):
            gen, step = rest[i]
            outcomes[i] = _or_error(ops[i], functools.partial(drive, gen, run, step))

    @staticmethod
    def _advance(
        i: int,
        gen: Generator[Step, Any, Any],
        result: Any,
        pending: dict[int, tuple[Generator[Step, Any, Any], Step]],
        outcomes: list[Any],
    ) -> None:
        """Send ``result`` to ``gen`` (``None`` starts it): its next step, or its outcome."""
        try:
            step = gen.send(result)
        except StopIteration as stop:
            outcomes[i] = stop.value
        else:
            pending[i] = (gen, step)

    def _persists(
        self, cx: sqlite3.Connection, ops: Sequence[Op], which: list[int], outcomes: list[Any]
    ) -> None:
        """The new rows ``which`` (:class:`PersistOp`), as their ``steps`` would insert
        them, with a grouped statement per step: the rows, then the audit rows of those
        inserted. A row refused by a constraint (its task key is taken) fails alone."""
        persists = [cast(PersistOp, ops[i]) for i in which]
        task_args = self._task_args
        args = [task_args(op.row) for op in persists]
        audits: list[Step] = []
        for i, op, result in zip(
            which, persists, self._inserts(cx, "insert_task", args), strict=True
        ):
            if isinstance(result, sqlite3.IntegrityError):
                outcomes[i] = _failure(op, result)
            else:
                audits += op.audit_steps()
        self._audit_rows(cx, audits)

    def _save_logs(self, cx: sqlite3.Connection, ops: Sequence[Op], which: list[int]) -> None:
        """The captured logs ``which`` (:class:`SaveLogsOp`, outcome ``None``), as their
        ``steps`` would save them: one read of which tasks still exist, then every record
        of those as grouped inserts. A refused record fails the batch (the writer retries
        each operation alone, where a save is all its records or none)."""
        saves = [cast(SaveLogsOp, ops[i]) for i in which]
        exists = self._sql["select_task_exists"]
        ids = [exists.args({"id": op.task_id})[0] for op in saves]
        found = self._found(cx, "existing", existing_sql, ids)
        insert = self._sql["insert_log"]
        args = [
            insert.args(params)
            for op, task_id in zip(saves, ids, strict=True)
            if task_id in found
            for params in op.log_step().params
        ]
        self._insert_all(cx, "insert_log", args)

    def _found(
        self,
        cx: sqlite3.Connection,
        name: str,
        build: Callable[[int], str],
        ids: list[Any],
        *after: Any,
    ) -> set[Any]:
        """The first column of the rows of ``build(n)`` run on ``ids``, ``n`` at a time
        (each time followed by the arguments ``after``)."""
        out: set[Any] = set()
        for start, size in _chunks(len(ids)):
            text = self._text(name, size, build)
            out.update(r[0] for r in cx.execute(text, [*ids[start : start + size], *after]))
        return out

    def _audit_rows(self, cx: sqlite3.Connection, audits: list[Step]) -> None:
        """The ``insert_status_audit`` steps ``audits`` as grouped inserts."""
        if audits:
            audit = self._sql["insert_status_audit"]
            self._insert_all(cx, "insert_status_audit", [audit.args(s.params) for s in audits])

    def _insert_all(self, cx: sqlite3.Connection, name: str, args: list[tuple[Any, ...]]) -> None:
        """Rows that nothing refuses but a broken database (audit rows, log records) as
        grouped inserts; a refused row fails the batch (the writer then retries each
        operation alone)."""
        for result in self._inserts(cx, name, args):
            if isinstance(result, sqlite3.IntegrityError):
                raise result

    def _transitions(
        self,
        cx: sqlite3.Connection,
        ops: Sequence[Op],
        which: list[int],
        outcomes: list[Any],
        rest: dict[int, tuple[Generator[Step, Any, Any], Step]],
    ) -> None:
        """The status writes ``which`` (:class:`TransitionOp`), each as its ``steps`` would
        run them, with a grouped statement per step: the update, returning what the row
        counts in; the audit rows; and, for terminal writes, one read of which of them have
        continuations waiting. A write that counts in a batch or workflow not counted yet,
        or that has waiting continuations, goes on in ``rest`` with its ``finish`` (rare:
        most terminal writes release nothing, and end here)."""
        transitions = [cast(TransitionOp, ops[i]) for i in which]
        args = [self._update_args(op) for op in transitions]
        found = self._updates(cx, args)
        audits: list[Step] = []
        releasing: list[tuple[int, TransitionOp, tuple[Any, ...]]] = []
        for i, op, a in zip(which, transitions, args, strict=True):
            row = found.get(a[-1])  # the id, the update's last argument
            if row is None:
                outcomes[i] = op.not_found()
                continue
            audits += op.audit_steps()
            if op.releases:
                releasing.append((i, op, row))
                outcomes[i] = []  # released nothing, unless its finish below says otherwise
        self._audit_rows(cx, audits)
        if not releasing:
            return
        ids = [row[0] for _, _, row in releasing]
        waiting = self._found(cx, "waiting_parents", waiting_parents_sql, ids, _WAITING_PARENT)
        for i, op, (task_id, batch_id, workflow_id, counted) in releasing:
            member = (batch_id is not None or workflow_id is not None) and not counted
            if member or task_id in waiting:
                gen = op.finish()
                rest[i] = (gen, next(gen))

    # -- the grouped statements ------------------------------------------------------------
    def _group(
        self, cx: sqlite3.Connection, name: str, steps: list[Step], run: Runner
    ) -> list[Any]:
        if len(steps) < MIN_GROUP:  # a grouped statement costs more for so few rows
            return [_outcome(run, step) for step in steps]
        prepared = self._sql[name]
        return self._inserts(cx, name, [prepared.args(step.params) for step in steps])

    def _text(self, name: str, rows: int, build: Callable[[int], str]) -> str:
        """The grouped text of ``name`` for ``rows`` rows, built once."""
        text = self._texts.get((name, rows))
        if text is None:
            text = self._texts[(name, rows)] = build(rows)
        return text

    def _inserts(self, cx: sqlite3.Connection, name: str, args: list[tuple[Any, ...]]) -> list[Any]:
        head, values = self._insert_heads[name]
        out: list[Any] = [1] * len(args)
        for start, size in _chunks(len(args)):
            text = self._text(name, size, lambda n: f"{head} VALUES {', '.join([values] * n)}")
            part = args[start : start + size]
            try:
                cx.execute(text, list(itertools.chain.from_iterable(part)))
            except sqlite3.IntegrityError:  # the statement was undone: find whose row it was
                single = self._text(name, 1, lambda n: f"{head} VALUES {values}")
                for k, row in enumerate(part):
                    try:
                        cx.execute(single, row)
                    except sqlite3.IntegrityError as error:
                        out[start + k] = error
        return out

    def _updates(
        self, cx: sqlite3.Connection, args: list[tuple[Any, ...]]
    ) -> dict[Any, tuple[Any, ...]]:
        """The grouped ``update_status``: the :data:`_MEMBERSHIP` columns (the id first)
        of each row it changed, by id."""
        head, columns = self._update
        row = f"({', '.join('?' * columns)})"
        changed: dict[Any, tuple[Any, ...]] = {}
        for start, size in _chunks(len(args)):
            text = self._text(
                "update_status",
                size,
                lambda n: (
                    f"{head} FROM (VALUES {', '.join([row] * n)}) AS v "
                    f'WHERE "QueuedTasks"."Id" = v.column{columns} RETURNING {_MEMBERSHIP}'
                ),
            )
            part = args[start : start + size]
            for r in cx.execute(text, list(itertools.chain.from_iterable(part))):
                changed[r[0]] = tuple(r)
        return changed


def waiting_parents_sql(rows: int) -> str:
    """Which of ``rows`` ids (then the WaitingParent status) have continuations waiting:
    a seek of the parent index per id (named: without statistics SQLite would rather
    scan the rows of that status)."""
    return (
        f'SELECT DISTINCT "ParentTaskId" FROM "QueuedTasks" INDEXED BY "{PARENT_INDEX}" '
        f'WHERE "ParentTaskId" IN ({", ".join("?" * rows)}) AND "Status" = ?'
    )


def existing_sql(rows: int) -> str:
    """Which of ``rows`` task ids exist."""
    return f'SELECT "Id" FROM "QueuedTasks" WHERE "Id" IN ({", ".join("?" * rows)})'


def _plain_transition(op: Op) -> bool:
    """Whether ``op`` is a status write :meth:`GroupedSteps._transitions` runs (one that
    keeps the next run's time: ``clear_next`` writes run as their steps say)."""
    return type(op) is TransitionOp and not op.clear_next


def run_alone(ops: Sequence[Op], which: Iterable[int], outcomes: list[Any], run: Runner) -> None:
    """The operations ``which`` of ``ops`` one by one, each as
    :func:`~evertask_storage_efcore_like.ops.drive` runs it."""
    for i in which:
        outcomes[i] = _or_error(ops[i], functools.partial(drive, ops[i].steps(), run))


def _or_error(op: Op, call: Callable[[], Any]) -> Any:
    """``call()``, or :func:`_failure` of the constraint violation it raised."""
    try:
        return call()
    except sqlite3.IntegrityError as error:
        return _failure(op, error)


def _failure(op: Op, error: sqlite3.IntegrityError) -> BaseException:
    """The outcome of ``op`` when a statement of it broke a constraint (SQLite undid only
    that statement); raised instead if ``op`` may have written before it (the batch is
    then rolled back and the writer retries each operation alone)."""
    if op.several_writes:
        raise error
    return map_integrity_error(op, error)


def _outcome(run: Runner, step: Step) -> Any:
    """``run(step)``, or the constraint error it raised (only that statement was undone)."""
    try:
        return run(step)
    except sqlite3.IntegrityError as error:
        return error
