"""``evertask run MODULE:FACTORY``: a worker node (or any host) from the application's own
builder factory, stopped gracefully by SIGTERM or Ctrl-C.

Stopping: the first SIGTERM or SIGINT stops the host gracefully (it takes no new work,
running tasks get the grace period, then are cancelled and become ServiceStopped, the node
leaves the cluster and hands its pending tasks to the others). A second signal stops at
once: while the host waits for running tasks they are cancelled now (still marked
ServiceStopped); at any other point of the stop the process exits immediately with 130
(tasks it was running are recovered when its lease ends, as after a crash).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

import click

from .codes import EXIT_FORCED
from .errors import CliError
from .storage import storage_failure

__all__ = ["GC_YOUNG_THRESHOLD", "load_target", "run", "tune_gc", "untune_gc"]

log = logging.getLogger("evertask.cli")

_LEVELS = ("critical", "error", "warning", "info", "debug")
GC_YOUNG_THRESHOLD = 10_000
"""The young generation's threshold ``--tune-gc`` sets (CPython's default: 700)."""
_SPEC_HINT = "MODULE:FACTORY, e.g. myapp.worker:create_builder"


def load_target(target: str, app_dir: str | os.PathLike[str] = ".") -> Any:
    """The object ``MODULE:ATTRIBUTE`` names, importing MODULE with ``app_dir`` (default the
    current directory) first on ``sys.path``, as uvicorn does."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise click.BadParameter(f"{target!r} is not {_SPEC_HINT}.", param_hint="MODULE:FACTORY")
    directory = str(Path(app_dir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise click.BadParameter(
                f"cannot import module {module_name!r} (looked in {directory} and the "
                f"installed packages): {error}.",
                param_hint="MODULE:FACTORY",
            ) from None
        traceback.print_exc()
        raise CliError(f"Importing {module_name!r} failed: {error}") from None
    except Exception as error:
        traceback.print_exc()
        raise CliError(f"Importing {module_name!r} failed: {error!r}") from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attribute!r}.",
                param_hint="MODULE:FACTORY",
            ) from None
    return found


async def _host_of(found: Any, target: str) -> Any:
    """The host the factory makes (a builder is built; an awaitable is awaited)."""
    from evertask import EverTaskHost, EverTaskServiceBuilder

    value = found
    try:
        if callable(value) and not isinstance(value, EverTaskServiceBuilder | EverTaskHost):
            value = value()
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, EverTaskServiceBuilder):
            value = value.build()
    except click.ClickException:
        raise
    except Exception as error:
        traceback.print_exc()
        raise CliError(f"{target} failed: {error}") from None
    if not isinstance(value, EverTaskHost):
        raise CliError(
            f"{target} returned {type(value).__name__}; expected the builder of "
            "add_evertask(...) (or a built EverTaskHost, or an awaitable of either)."
        )
    return value


class _Signals:
    """SIGINT and SIGTERM while the node runs (see the module documentation)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self._loop = loop
        self._stop = stop
        self._count = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._count += 1
        if self._count == 1:
            self._loop.call_soon_threadsafe(self._first, signal.Signals(signum).name)
        elif signum == signal.SIGTERM:
            # while the host waits for running tasks, SIGINT is its "stop them now"
            os.kill(os.getpid(), signal.SIGINT)
        else:
            _force_exit()

    def _first(self, name: str) -> None:
        log.info("%s received: stopping gracefully (Ctrl-C again stops at once).", name)
        self._stop.set()


def _force_exit() -> None:
    """Exit now, without finishing the stop (from a signal handler: no logging locks)."""
    message = (
        b"evertask: stopped at once (exit code 130); the tasks this node was running resume "
        b"on another node (or at the next start) when its lease ends.\n"
    )
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(2, message)
    finally:
        os._exit(EXIT_FORCED)


def tune_gc() -> int:
    """Tune this process's garbage collector for many short tasks (``--tune-gc``): collect
    the start-up garbage, freeze what remains (``gc.freeze``: never walked again) and raise
    the young generation's threshold to :data:`GC_YOUNG_THRESHOLD`. Returns the number of
    objects frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()


def untune_gc(threshold: tuple[int, int, int]) -> None:
    """Undo :func:`tune_gc`: unfreeze the frozen objects and set ``threshold`` (what
    ``gc.get_threshold()`` gave before) again."""
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _serve(found: Any, target: str, grace: float | None, tune: bool = False) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = _Signals(loop, stop)
    signals.install()
    try:
        host = await _host_of(found, target)
        try:
            await host.start()
        except Exception as error:
            failure = storage_failure(error, host.storage)
            if failure is not None:
                raise failure from None
            traceback.print_exc()
            raise CliError(f"The host failed to start: {error}") from None
        storage = host.storage
        where = storage.describe() if hasattr(storage, "describe") else type(storage).__name__
        role = "worker" if host.runs_workers else "dispatch-only"
        log.info(
            "EverTask node %s started (%s; queues %s; storage %s). SIGTERM or Ctrl-C stops it.",
            host.node_id,
            role,
            ", ".join(host.queue_names),
            where,
        )
        if tune:
            frozen = tune_gc()
            log.info(
                "Garbage collector tuned: %d start-up objects frozen, young generation "
                "threshold %d.",
                frozen,
                GC_YOUNG_THRESHOLD,
            )
        try:
            await stop.wait()
        finally:
            await host.stop(grace)
        log.info("EverTask node %s stopped.", host.node_id)
    finally:
        signals.restore()


@click.command()
@click.argument("target", metavar="MODULE:FACTORY")
@click.option(
    "--log-level",
    type=click.Choice(_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Level of the log lines written to stderr.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(0),
    default=None,
    metavar="SECONDS",
    help="How long running tasks may finish at a graceful stop before they are cancelled "
    "(default: the builder's set_shutdown_grace_period, 30 s).",
)
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="Directory put first on sys.path to import MODULE from.",
)
@click.option(
    "--no-log-config",
    is_flag=True,
    help="Leave logging as the factory configures it (no handler is added).",
)
@click.option(
    "--tune-gc",
    "tune",
    is_flag=True,
    help="Once the host has started, freeze the start-up objects (gc.freeze) and raise the "
    f"garbage collector's young threshold to {GC_YOUNG_THRESHOLD:,}: fewer, cheaper "
    "collections for a worker running many short tasks (memory held in reference cycles is "
    "freed later).",
)
def run(
    target: str,
    log_level: str,
    grace_period: float | None,
    app_dir: str,
    no_log_config: bool,
    tune: bool,
) -> None:
    """Run a host built by the factory MODULE:FACTORY until SIGTERM or Ctrl-C.

    FACTORY is a callable returning the builder of add_evertask(...) (or a built
    EverTaskHost, or an awaitable of either); it is called inside the event loop. This is
    how dedicated worker processes of a cluster are started. The first SIGTERM or Ctrl-C
    stops gracefully, a second one at once.

    \b
    Example:
      evertask run myapp.worker:create_builder --log-level info
    """
    if not no_log_config:
        logging.basicConfig(
            level=log_level.upper(),
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
    found = load_target(target, app_dir)
    asyncio.run(_serve(found, target, grace_period, tune))
