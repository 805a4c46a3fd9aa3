"""What every peer worker shares: the request, the ledger, the five workloads, the replies.

Standard library only: it runs under each peer's own interpreter (next to the worker script)
as well as under the project's (for EverTask's driver).

Protocol: the harness passes the request as JSON in ``$BENCH_REQUEST``; the worker prints
one JSON object per line, prefixed with ``@@bench``, on stdout: ``info`` (settings,
versions), ``result`` (a workload's figures), ``na`` (a workload that could not run, with the
reason) and finally ``done``. Anything else on stdout or stderr is the peer's own output.

Every task records its execution in the ledger: in memory when the peer runs tasks in the
worker's own process, else one line appended to a file (``$BENCH_LEDGER``) by whichever
consumer process ran it. A workload only reports figures after checking that every one of
its task ids appears exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

PREFIX = "@@bench "
WORKLOADS = ("enqueue", "execute", "sleep", "latency", "lateness")

# One execution: (index, wall-clock start, monotonic start, monotonic end).
Row = tuple[int, float, float, float]


@dataclass(frozen=True)
class Request:
    """What the harness asks of a worker (decoded from ``$BENCH_REQUEST``)."""

    config: str
    backend: str
    workloads: tuple[str, ...]
    enqueue: int = 10_000
    execute: int = 10_000
    sleep: int = 1_000
    latency: int = 100
    lateness: int = 1_000
    concurrency: int = 4
    sleep_concurrency: int = 10
    sleep_ms: float = 25.0
    schedule_ahead_s: float = 1.0
    schedule_spacing_s: float = 0.001
    idle_gap_s: float = 0.01
    timeout_s: float = 180.0
    settle_s: float = 0.3
    redis_url: str = ""
    pg_dsn: str = ""
    workdir: str = ""
    ledger: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Request:
        """The request of this process (and of the consumer processes it starts)."""
        data = json.loads(os.environ["BENCH_REQUEST"])
        data["workloads"] = tuple(data.get("workloads", WORKLOADS))
        return cls(**data)


def emit(kind: str, **fields: Any) -> None:
    """Print one protocol line."""
    sys.stdout.write(PREFIX + json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """A progress line on stderr (kept by the harness in the run's log)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the same definition as ``benchmarks.common``)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- the ledger ------------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("event", "loop", "target", "thread")

    def __init__(self, target: int) -> None:
        self.target = target
        self.event = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()


class Ledger:
    """Executions by tag; in memory (this process) or read back from the shared file."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.rows: dict[str, list[Row]] = {}
        self._seen: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._offset = 0
        self._partial = b""

    # writers (in-process tasks)
    def record(self, tag: str, index: int, wall: float, start: float, end: float) -> None:
        """Store one execution and wake the waiter of ``tag`` once its target is reached."""
        with self._lock:
            rows = self.rows.get(tag)
            if rows is None:
                rows = self.rows[tag] = []
                self._seen[tag] = set()
            rows.append((index, wall, start, end))
            seen = self._seen[tag]
            seen.add(index)
            waiter = self._waiters.get(tag)
        if waiter is not None and len(seen) >= waiter.target:
            if threading.get_ident() == waiter.thread:
                waiter.event.set()
            else:
                waiter.loop.call_soon_threadsafe(waiter.event.set)

    # readers
    def _poll_file(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        if not data:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            tag, index, wall, start, end = line.decode().split(" ")
            self.record(tag, int(index), float(wall), float(start), float(end))

    def count(self, tag: str) -> int:
        """Distinct ids of ``tag`` seen so far."""
        if self.path:
            self._poll_file()
        return len(self._seen.get(tag, ()))

    async def wait(self, tag: str, target: int, timeout: float) -> bool:
        """Wait until ``target`` distinct ids of ``tag`` ran; False on timeout."""
        deadline = time.monotonic() + timeout
        if self.path:
            while self.count(tag) < target:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.001)
            return True
        waiter = _Waiter(target)
        with self._lock:
            self._waiters[tag] = waiter
            if len(self._seen.get(tag, ())) >= target:
                waiter.event.set()
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(tag, None)

    def dump(self, path: str) -> None:
        """Write every execution as ledger lines (for an independent check afterwards)."""
        with open(path, "w") as fh:
            for tag, rows in self.rows.items():
                for index, wall, start, end in rows:
                    fh.write(f"{tag} {index} {wall:.6f} {start:.6f} {end:.6f}\n")

    def check(self, tag: str, expected: int) -> str | None:
        """None when ids 0..expected-1 each ran exactly once, else what went wrong."""
        if self.path:
            self._poll_file()
        counts = Counter(row[0] for row in self.rows.get(tag, ()))
        missing = sum(1 for i in range(expected) if i not in counts)
        duplicated = sum(c - 1 for c in counts.values() if c > 1)
        foreign = sum(1 for i in counts if not 0 <= i < expected)
        if not (missing or duplicated or foreign):
            return None
        return (
            f"exactly-once check failed: {missing} of {expected} never ran, "
            f"{duplicated} extra executions, {foreign} unknown ids"
        )


_LEDGER: Ledger | None = None
_FD: int | None = None
_FD_PID = 0


def ledger() -> Ledger:
    """The ledger of this worker (created by :func:`run`)."""
    assert _LEDGER is not None, "the ledger exists once run() started"
    return _LEDGER


def record(tag: str, index: int, wall: float, start: float, end: float) -> None:
    """Record one execution: in memory in the worker, else appended to the ledger file."""
    if _LEDGER is not None and not _LEDGER.path:
        _LEDGER.record(tag, index, wall, start, end)
        return
    global _FD, _FD_PID
    if _FD is None or os.getpid() != _FD_PID:
        _FD = os.open(os.environ["BENCH_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _FD_PID = os.getpid()
    os.write(_FD, f"{tag} {index} {wall:.6f} {start:.6f} {end:.6f}\n".encode())


def begin() -> tuple[float, float]:
    """The start of a task body: (wall clock, monotonic)."""
    return time.time(), time.monotonic()


def done(tag: str, index: int, started: tuple[float, float] | None = None) -> None:
    """The end of a task body; a no-op task passes no start (start == end)."""
    end = time.monotonic()
    wall, start = started if started is not None else (time.time(), end)
    record(tag, index, wall, start, end)


def sleep_seconds() -> float:
    """How long a "sleep" task waits (from the request, also in consumer processes)."""
    return float(json.loads(os.environ["BENCH_REQUEST"]).get("sleep_ms", 25.0)) / 1000


# -- consumer processes --------------------------------------------------------------------


class Consumer:
    """A consumer process started with the peer's own command line.

    It stays in the worker's session (the harness stops the whole session at the end) and
    writes its output to the worker's stderr, never to the protocol's stdout.
    """

    def __init__(
        self,
        argv: list[str],
        stop_signal: int = signal.SIGTERM,
        grace_s: float = 3.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.stop_signal = stop_signal
        self.grace_s = grace_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (its readiness is checked by a warm-up task)."""
        log("consumer: " + " ".join(self.argv))
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr,
            env=self.env,
        )

    def stop(self) -> None:
        """Ask it to stop; kill it after the grace period."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        t0 = time.monotonic()
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            log(f"consumer {proc.pid} ignored signal {self.stop_signal}; killing it")
            proc.kill()
            proc.wait()
        log(f"consumer {proc.pid} stopped in {time.monotonic() - t0:.1f} s")


# -- the adapter each worker implements ------------------------------------------------------


class Adapter(Protocol):
    """One peer on one back end, as the workloads drive it."""

    settings: str  # how the peer is configured (shown in the table's notes)
    in_process: bool  # tasks run in this process (memory ledger) or elsewhere (file ledger)
    stoppable: bool  # tasks can be accepted while no consumer runs (for "enqueue")
    unsupported: dict[str, str]  # workload -> why it cannot run

    def versions(self) -> dict[str, str]:
        """Package -> version of what is measured."""
        ...

    async def prepare(self, concurrency: int) -> None:
        """Be ready to accept tasks with consumers of ``concurrency`` (not yet running)."""
        ...

    async def start(self) -> None:
        """Start the consumers."""
        ...

    async def close(self) -> None:
        """Stop the consumers and release everything ``prepare`` made."""
        ...

    async def enqueue(self, tag: str, index: int, sleep: bool) -> None:
        """Dispatch one task (a no-op, or a sleep of ``sleep_ms``) to run now."""
        ...

    async def schedule(self, tag: str, index: int, at: float) -> float | None:
        """Dispatch one no-op task to run at ``at`` (epoch seconds).

        A peer that can only schedule coarser instants returns the instant it was given
        (lateness is then measured from that one); None means ``at`` itself.
        """
        ...


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (``?`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


# -- the workloads ---------------------------------------------------------------------------


def _error(what: str, exc: BaseException) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"[:300]


class _Skip(Exception):
    """A workload that cannot report figures (timed out, or failed its exactly-once check)."""


class Driver:
    """Runs the requested workloads against one adapter and reports each one."""

    def __init__(self, request: Request, adapter: Adapter) -> None:
        self.req = request
        self.peer = adapter
        self.ledger = ledger()
        self._warmups = 0

    async def _drain(self, tag: str, expected: int) -> None:
        if not await self.ledger.wait(tag, expected, self.req.timeout_s):
            ran = self.ledger.count(tag)
            raise _Skip(f"timed out after {self.req.timeout_s:.0f} s: {ran} of {expected} ran")
        await asyncio.sleep(self.req.settle_s)  # late duplicates would show up here
        problem = self.ledger.check(tag, expected)
        if problem:
            raise _Skip(problem)

    async def _warmup(self) -> None:
        tag = f"warmup{self._warmups}"
        self._warmups += 1
        await self.peer.enqueue(tag, 0, False)
        await self._drain(tag, 1)

    def _wanted(self, workload: str) -> bool:
        if workload not in self.req.workloads:
            return False
        reason = self.peer.unsupported.get(workload)
        if reason:
            emit("na", workload=workload, reason=reason)
            return False
        return True

    async def _guard(self, workload: str, body: Callable[[], Any]) -> None:
        log(f"{self.req.config}: {workload}")
        try:
            figures = await body()
        except _Skip as skip:
            emit("na", workload=workload, reason=str(skip))
        except Exception as exc:
            traceback.print_exc()
            emit("na", workload=workload, reason=_error("error", exc))
        else:
            emit("result", workload=workload, figures=figures)

    async def run(self) -> None:
        """Phase 1 at the default concurrency, phase 2 (sleep) at the sleep concurrency."""
        req = self.req
        phase1 = [w for w in ("enqueue", "execute", "latency", "lateness") if self._wanted(w)]
        if phase1:
            await self._phase(req.concurrency, phase1, self._phase1)
        if self._wanted("sleep"):
            await self._phase(req.sleep_concurrency, ["sleep"], self._phase2)

    async def _phase(
        self, concurrency: int, workloads: list[str], body: Callable[[list[str]], Any]
    ) -> None:
        try:
            await self.peer.prepare(concurrency)
        except Exception as exc:
            traceback.print_exc()
            for workload in workloads:
                emit("na", workload=workload, reason=_error("setup failed", exc))
            return
        try:
            await body(workloads)
        finally:
            try:
                await self.peer.close()
            except Exception:
                traceback.print_exc()

    async def _phase2(self, workloads: list[str]) -> None:
        try:
            await self.peer.start()
            await self._warmup()
        except Exception as exc:
            traceback.print_exc()
            emit("na", workload="sleep", reason=_error("start failed", exc))
            return
        await self._guard("sleep", self._sleep)

    async def _phase1(self, workloads: list[str]) -> None:
        started = False

        async def enqueue_then_drain() -> dict[str, float]:
            nonlocal started
            await self.peer.enqueue("warmup-producer", 0, False)  # connections, imports
            n = self.req.enqueue
            enqueue = self.peer.enqueue
            t0 = time.perf_counter()
            for i in range(n):
                await enqueue("enqueue", i, False)
            elapsed = time.perf_counter() - t0
            await self.peer.start()
            started = True
            await self._drain("warmup-producer", 1)
            await self._drain("enqueue", n)
            after = getattr(self.peer, "after_enqueue", None)
            if after is not None:
                after()
            return {"seconds": elapsed, "per_s": n / elapsed, "tasks": n}

        if "enqueue" in workloads:
            await self._guard("enqueue", enqueue_then_drain)
        try:
            if not started:
                await self.peer.start()
            await self._warmup()
        except Exception as exc:
            traceback.print_exc()
            for workload in workloads:
                if workload != "enqueue":
                    emit("na", workload=workload, reason=_error("start failed", exc))
            return
        if "execute" in workloads:
            await self._guard("execute", self._execute)
        if "latency" in workloads:
            await self._guard("latency", self._latency)
        if "lateness" in workloads:
            await self._guard("lateness", self._lateness)

    async def _execute(self) -> dict[str, float]:
        n = self.req.execute
        enqueue = self.peer.enqueue
        t0 = time.monotonic()
        for i in range(n):
            await enqueue("execute", i, False)
        await self._drain("execute", n)
        last = max(row[3] for row in self.ledger.rows["execute"])
        elapsed = last - t0
        return {"seconds": elapsed, "per_s": n / elapsed, "tasks": n}

    async def _sleep(self) -> dict[str, float]:
        n, req = self.req.sleep, self.req
        enqueue = self.peer.enqueue
        t0 = time.monotonic()
        for i in range(n):
            await enqueue("sleep", i, True)
        await self._drain("sleep", n)
        last = max(row[3] for row in self.ledger.rows["sleep"])
        elapsed = last - t0
        ideal = n * req.sleep_ms / 1000 / req.sleep_concurrency
        return {"seconds": elapsed, "ideal": ideal, "to_ideal": elapsed / ideal, "tasks": n}

    async def _latency(self) -> dict[str, float]:
        n = self.req.latency
        sent: list[float] = []
        for i in range(n):
            await asyncio.sleep(self.req.idle_gap_s)
            sent.append(time.monotonic())
            await self.peer.enqueue("latency", i, False)
            if not await self.ledger.wait("latency", i + 1, self.req.timeout_s):
                raise _Skip(f"sample {i} did not run within {self.req.timeout_s:.0f} s")
        await self._drain("latency", n)
        ms = [(row[2] - sent[row[0]]) * 1000 for row in self.ledger.rows["latency"]]
        return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "samples": n}

    async def _lateness(self) -> dict[str, float]:
        n = self.req.lateness
        ahead, spacing = self.req.schedule_ahead_s, self.req.schedule_spacing_s
        due: list[float] = []
        t0 = time.monotonic()
        for i in range(n):
            pause = t0 + i * spacing - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            at = time.time() + ahead
            given = await self.peer.schedule("lateness", i, at)
            due.append(at if given is None else given)
        await self._drain("lateness", n)
        late = [(row[1] - due[row[0]]) * 1000 for row in self.ledger.rows["lateness"]]
        return {
            "p50_ms": percentile(late, 50),
            "p99_ms": percentile(late, 99),
            "min_ms": min(late),
            "tasks": n,
        }


def run(make: Callable[[Request], Adapter]) -> None:
    """The worker's entry point: build the adapter, run the workloads, report."""
    global _LEDGER
    req = Request.from_env()

    async def main() -> None:
        global _LEDGER
        try:
            adapter = make(req)
        except Exception as exc:
            traceback.print_exc()
            for workload in req.workloads:
                emit("na", workload=workload, reason=_error("setup failed", exc))
            emit("done")
            return
        book = _LEDGER = Ledger("" if adapter.in_process else req.ledger)
        emit("info", settings=adapter.settings, versions=adapter.versions())
        try:
            await Driver(req, adapter).run()
        finally:
            if adapter.in_process and req.ledger:
                book.dump(req.ledger)  # the same file a cross-process peer leaves
        emit("done")

    _LEDGER = None
    if req.ledger:
        open(req.ledger, "ab").close()  # consumer processes append to it
    asyncio.run(main())
