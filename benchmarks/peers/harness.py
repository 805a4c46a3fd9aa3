"""Runs each configuration (a peer on a back end) in its own worker process, one at a time.

A worker is ``workers/<peer>_peer.py`` executed by the peer's own virtualenv (EverTask's is
``workers/ours.py`` under the project's interpreter); it receives the request in
``$BENCH_REQUEST`` and answers with ``@@bench`` JSON lines (see ``workers/_kit.py``). Before
each configuration the benchmark's Redis database is flushed and its PostgreSQL database
created afresh; after it, every process of the worker's session (its consumers included) is
stopped.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from .services import ServiceError, Services
from .venvs import VenvError, cache_dir, ensure_venv, load_pins

__all__ = ["CONFIGS", "Config", "Counts", "Outcome", "run_configs", "select"]

WORKERS = Path(__file__).with_name("workers")
REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ("enqueue", "execute", "sleep", "latency", "lateness")
PREFIX = "@@bench "


@dataclass(frozen=True)
class Config:
    """One peer on one back end."""

    key: str  # e.g. "huey-redis"
    peer: str  # the table of requirements.toml ("evertask" for ours)
    label: str  # display name
    backend: str  # memory, sqlite, redis, postgres
    storage: str  # the class the row is grouped and compared in

    @property
    def ours(self) -> bool:
        """EverTask itself."""
        return self.peer == "evertask"


CONFIGS: tuple[Config, ...] = (
    Config("evertask-memory", "evertask", "EverTask", "memory", "memory"),
    Config("evertask-sqlite", "evertask", "EverTask", "sqlite", "sqlite"),
    Config("evertask-postgres", "evertask", "EverTask", "postgres", "postgres"),
    Config("apscheduler-memory", "apscheduler", "APScheduler", "memory", "memory"),
    Config("taskiq-memory", "taskiq", "taskiq", "memory", "memory"),
    Config("huey-memory", "huey", "Huey", "memory", "memory"),
    Config("huey-sqlite", "huey", "Huey", "sqlite", "sqlite"),
    Config("arq-redis", "arq", "arq", "redis", "redis"),
    Config("saq-redis", "saq", "SAQ", "redis", "redis"),
    Config("taskiq-redis", "taskiq", "taskiq", "redis", "redis"),
    Config("huey-redis", "huey", "Huey", "redis", "redis"),
    Config("dramatiq-redis", "dramatiq", "Dramatiq", "redis", "redis"),
    Config("celery-redis", "celery", "Celery", "redis", "redis"),
    Config("rq-redis", "rq", "RQ", "redis", "redis"),
    Config("apscheduler-postgres", "apscheduler", "APScheduler", "postgres", "postgres"),
    Config("saq-postgres", "saq", "SAQ", "postgres", "postgres"),
    Config("procrastinate-postgres", "procrastinate", "procrastinate", "postgres", "postgres"),
)


@dataclass(frozen=True)
class Counts:
    """Sizes of the workloads and the limits of one run."""

    enqueue: int = 10_000
    execute: int = 10_000
    sleep: int = 1_000
    latency: int = 100
    lateness: int = 1_000
    concurrency: int = 4
    sleep_concurrency: int = 10
    sleep_ms: float = 25.0
    timeout_s: float = 240.0  # one wait inside a workload
    deadline_s: float = 900.0  # one configuration, all workloads

    @classmethod
    def full(cls) -> Counts:
        """The published run."""
        return cls()

    @classmethod
    def quick(cls) -> Counts:
        """``--quick``: the same workloads, smaller."""
        return cls(
            enqueue=500,
            execute=500,
            sleep=100,
            latency=10,
            lateness=100,
            timeout_s=60,
            deadline_s=120,
        )


@dataclass
class Outcome:
    """What one configuration reported."""

    config: Config
    settings: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    busy_before: float = float("nan")  # share of the machine's CPU in use just before
    log: str = ""

    def fail_all(self, reason: str, workloads: tuple[str, ...] = WORKLOADS) -> None:
        """Every workload not reported yet becomes n/a with ``reason``."""
        for workload in workloads:
            if workload not in self.figures and workload not in self.na:
                self.na[workload] = reason


def cpu_busy(interval: float = 0.5) -> float:
    """Share (0-1) of all CPUs busy over ``interval`` seconds (NaN where /proc is missing)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else float("nan")


def wait_until_quiet(limit: float, max_wait_s: float) -> float:
    """Wait (at most ``max_wait_s``) until other processes use less than ``limit`` of the CPUs."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return busy


def select(spec: str | None) -> list[Config]:
    """Configurations named in ``spec`` (comma-separated keys or prefixes; all if empty)."""
    if not spec:
        return list(CONFIGS)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = [c for c in CONFIGS if any(c.key == w or c.key.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(c.key.startswith(w) for c in CONFIGS)]
    if unknown:
        known = ", ".join(c.key for c in CONFIGS)
        raise SystemExit(f"unknown peer configuration(s) {unknown}; known: {known}")
    return chosen


def _python_and_argv(config: Config) -> tuple[list[str], dict[str, str]]:
    """The worker's command line and the environment additions it needs."""
    if config.ours:
        argv = [sys.executable, "-m", "benchmarks.peers.workers.ours"]
        profiles = os.environ.get("EVERTASK_BENCH_PROFILE")
        if profiles:  # py-spy samples EverTask's own worker: collapsed stacks, idle included
            Path(profiles).mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            out = str(Path(profiles) / f"{config.key}.txt")
            argv = [spy, "record", "-f", "raw", "--idle", "--nonblocking", "-o", out, "--", *argv]
        return argv, {"PYTHONPATH": str(REPO)}
    python = ensure_venv(load_pins()[config.peer])
    venv = python.parent.parent
    env = {
        "PYTHONPATH": str(WORKERS),
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return [str(python), str(WORKERS / f"{config.peer}_peer.py")], env


def _prepare_services(config: Config, services: Services) -> dict[str, str]:
    """Flush Redis / create the PostgreSQL database the configuration uses."""
    out: dict[str, str] = {"redis_url": services.redis_url, "pg_dsn": ""}
    if config.backend == "redis":
        services.flush_redis()
    if config.backend == "postgres":
        out["pg_dsn"] = services.fresh_database("evertask_peers_" + config.key.replace("-", "_"))
    return out


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Stop every process of the worker's session (SIGTERM, then SIGKILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader: a zombie would still count as a member
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def run_config(
    config: Config,
    counts: Counts,
    services: Services,
    run_dir: Path,
    workloads: tuple[str, ...] = WORKLOADS,
) -> Outcome:
    """Run one configuration's worker to completion (or its deadline)."""
    outcome = Outcome(config)
    started = time.monotonic()
    workdir = run_dir / config.key
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "worker.log"
    outcome.log = str(log_path)
    try:
        argv, env_extra = _python_and_argv(config)
    except VenvError as exc:
        outcome.fail_all(f"could not install the peer: {exc}"[:300], workloads)
        return outcome
    try:
        urls = _prepare_services(config, services)
    except ServiceError as exc:
        outcome.fail_all(str(exc)[:300], workloads)
        return outcome
    ledger = workdir / "ledger.txt"
    ledger.unlink(missing_ok=True)
    request = {
        "config": config.key,
        "backend": config.backend,
        "workloads": list(workloads),
        **{k: v for k, v in asdict(counts).items() if k != "deadline_s"},
        **urls,
        "workdir": str(workdir),
        "ledger": str(ledger),
    }
    env = {
        **os.environ,
        **env_extra,
        "BENCH_REQUEST": json.dumps(request),
        "BENCH_LEDGER": str(ledger),
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=str(REPO if config.ours else workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # its consumers join this session; stopped together
        )
        timed_out = True
        try:
            timed_out = not _read_replies(proc, outcome, log, started + counts.deadline_s)
            if not timed_out:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            _kill_session(proc)
            proc.wait()
    if timed_out:
        outcome.fail_all(f"the worker did not finish within {counts.deadline_s:.0f} s", workloads)
    elif proc.returncode:
        outcome.fail_all(
            f"the worker exited with code {proc.returncode}: {_tail(log_path)}", workloads
        )
    outcome.fail_all("the worker reported nothing for this workload", workloads)
    outcome.seconds = time.monotonic() - started
    return outcome


def _read_replies(
    proc: subprocess.Popen[bytes], outcome: Outcome, log: BinaryIO, deadline: float
) -> bool:
    """Collect the worker's replies; False when the deadline passed first."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    while time.monotonic() < deadline:
        if not selector.select(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return True
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            if not line.startswith(PREFIX):
                log.write(raw + b"\n")  # the peer's own stdout
                continue
            message = json.loads(line[len(PREFIX) :])
            kind = message.get("kind")
            if kind == "info":
                outcome.settings = str(message.get("settings", ""))
                outcome.versions = {str(k): str(v) for k, v in message["versions"].items()}
            elif kind == "result":
                figures = {str(k): float(v) for k, v in message["figures"].items()}
                outcome.figures[str(message["workload"])] = figures
            elif kind == "na":
                outcome.na[str(message["workload"])] = str(message["reason"])
            elif kind == "done":
                return True
    return False


def _tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:240]


def run_configs(
    configs: list[Config],
    counts: Counts,
    *,
    workloads: tuple[str, ...] = WORKLOADS,
    run_dir: Path | None = None,
    progress: bool = True,
    quiet_wait_s: float = 0.0,
) -> list[Outcome]:
    """Run ``configs`` one after the other; EverTask's own rows first.

    With ``quiet_wait_s`` > 0, each configuration first waits (that long at most) until
    other processes use less than a quarter of the machine's CPU.
    """
    services = Services()
    if run_dir is None:
        run_dir = cache_dir() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(configs, key=lambda c: not c.ours)
    outcomes: list[Outcome] = []
    for config in ordered:
        if progress:
            print(f"-- {config.key} ...", file=sys.stderr, flush=True)
        busy = wait_until_quiet(0.25, quiet_wait_s) if quiet_wait_s > 0 else cpu_busy()
        outcome = run_config(config, counts, services, run_dir, workloads)
        outcome.busy_before = busy
        if progress:
            status = ", ".join(f"{w}: {'ok' if w in outcome.figures else 'n/a'}" for w in workloads)
            print(f"   {outcome.seconds:.0f} s; {status}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
        if config.backend == "postgres":
            try:
                services.drop_database("evertask_peers_" + config.key.replace("-", "_"))
            except ServiceError:
                pass
    return outcomes
