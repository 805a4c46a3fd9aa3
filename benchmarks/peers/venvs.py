"""One cached virtualenv per peer, built from the pins in ``requirements.toml``.

The cache lives outside the repository: ``$EVERTASK_BENCH_CACHE`` if set, else
``$XDG_CACHE_HOME/evertask-bench`` (``~/.cache/evertask-bench``). A venv is reused while its
requirements are unchanged (its name carries a hash of them), so only the first run downloads.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pin", "VenvError", "cache_dir", "ensure_venv", "load_pins", "venv_dir"]

PINS_FILE = Path(__file__).with_name("requirements.toml")
_READY = ".bench-ready"


class VenvError(RuntimeError):
    """A peer's virtualenv could not be created (no network, no wheel, a failed build)."""


@dataclass(frozen=True)
class Pin:
    """A peer's release and the exact packages installed into its virtualenv."""

    peer: str
    version: str
    requirements: tuple[str, ...]

    @property
    def digest(self) -> str:
        """A short hash of the requirements (and the interpreter's minor version)."""
        text = "\n".join((f"py{sys.version_info[0]}.{sys.version_info[1]}", *self.requirements))
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def load_pins(path: Path = PINS_FILE) -> dict[str, Pin]:
    """The pins, by peer name."""
    data = tomllib.loads(path.read_text())
    return {
        name: Pin(name, str(table["version"]), tuple(str(r) for r in table["requirements"]))
        for name, table in data.items()
    }


def cache_dir() -> Path:
    """Where venvs and run artefacts are kept (created on demand)."""
    explicit = os.environ.get("EVERTASK_BENCH_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "evertask-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def venv_dir(pin: Pin) -> Path:
    """The venv directory of ``pin``: ``<cache>/venvs/<peer>-<version>-<hash>``."""
    return cache_dir() / "venvs" / f"{pin.peer}-{pin.version}-{pin.digest}"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(pin: Pin, *, create: bool = True) -> Path:
    """The python of ``pin``'s venv, creating and installing it first when missing.

    Raises :class:`VenvError` when the venv is missing and ``create`` is false, or when
    creating it fails; a half-built venv is removed so the next run starts clean.
    """
    venv = venv_dir(pin)
    python = _python(venv)
    if (venv / _READY).exists() and python.exists():
        return python
    if not create:
        raise VenvError(f"the venv of {pin.peer} {pin.version} is not built yet ({venv})")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same venv
        if (venv / _READY).exists() and python.exists():
            return python
        _remove(venv)
        for stale in venv.parent.glob(f"{pin.peer}-*"):
            if stale.is_dir() and stale.name.rsplit("-", 2)[0] == pin.peer:
                _remove(stale)  # an older pin of the same peer
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", *pin.requirements],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                _remove(venv)
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise VenvError(f"`{' '.join(argv[:4])} ...` failed: {' | '.join(tail)}")
        (venv / _READY).write_text("\n".join(pin.requirements) + "\n")
    return python


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
