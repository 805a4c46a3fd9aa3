"""The built distributions install and import on their own.

``scripts/build_dists.py`` (``make dist``) builds every wheel and sdist into a temporary
directory once; then each wheel is installed, with its dependencies, into a fresh virtual
environment with uv (from that directory and the package registry; uv's cache keeps it to
seconds) and its package is imported there. The environment of ``evertask-abstractions``
holds pydantic and pydantic's own dependencies and nothing else; ``evertask-storage-sqlite``
brings the core and the SQL base; ``evertask[sqlite,monitor]`` finds the sibling
distributions. The registry unreachable skips these tests (fails them under ``CI=true``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib.metadata import Distribution, distributions
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from evertask.version import __version__

from .distributions import ROOT, canonical, dists

pytestmark = pytest.mark.slow

EXTRAS = f"evertask[sqlite,monitor]=={__version__}"
TIMEOUT = 300


@dataclass(frozen=True)
class Venv:
    spec: str
    path: Path
    error: str  # uv's output when the install failed, else ""

    @property
    def python(self) -> Path:
        return self.path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        """``code`` in the environment: isolated (-I), outside the checkout, no PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return subprocess.run(
            [str(self.python), "-I", "-c", code],
            capture_output=True,
            text=True,
            cwd=self.path,
            env=env,
            timeout=TIMEOUT,
            check=False,
        )

    @cache  # noqa: B019 (one per environment of the session)
    def site_packages(self) -> Path:
        done = self.run("import sysconfig; print(sysconfig.get_path('purelib'))")
        assert done.returncode == 0, done.stderr
        return Path(done.stdout.strip())

    def installed(self) -> dict[str, Distribution]:
        """Every distribution installed in the environment, by canonical name."""
        return {
            canonical(d.metadata["Name"]): d
            for d in distributions(path=[str(self.site_packages())])
        }


def _uv() -> str:
    from uv import find_uv_bin  # the uv of the dev extra

    return find_uv_bin()


def _uv_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run(
        [_uv(), *args, "--no-config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def _make_venv(spec: str, path: Path, wheels: Path) -> Venv:
    done = _uv_run("venv", "--python", sys.executable, str(path), cwd=path.parent)
    if done.returncode == 0:
        python = Venv(spec, path, "").python
        done = _uv_run(
            "pip", "install", "--python", str(python), "--find-links", str(wheels), spec,
            cwd=path.parent,
        )  # fmt: skip
    return Venv(spec, path, "" if done.returncode == 0 else f"{done.stdout}\n{done.stderr}")


def _registry_error() -> str:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pydantic/", timeout=15) as answer:
            answer.read(1)
    except OSError as error:
        return f"the package registry is unreachable ({error})"
    return ""


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel and sdist, built by ``scripts/build_dists.py`` (what ``make dist`` runs)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_dists.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="session")
def venvs(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Venv]:
    """A fresh environment per distribution (``name==version``), and one for ``EXTRAS``,
    installed in parallel."""
    root = tmp_path_factory.mktemp("venvs")
    specs = [f"{name}=={__version__}" for name in sorted(dists())] + [EXTRAS]
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        made = list(
            pool.map(lambda s: _make_venv(s, root / f"venv{specs.index(s)}", wheels), specs)
        )
    failed = [v for v in made if v.error]
    if failed:
        reason = _registry_error()
        if reason and os.environ.get("CI") != "true":
            pytest.skip(reason)
        pytest.fail(
            (reason + "\n" if reason else "")
            + "\n".join(f"uv pip install {v.spec} failed:\n{v.error}" for v in failed)
        )
    return {v.spec: v for v in made}


def venv_of(venvs: dict[str, Venv], name: str) -> Venv:
    return venvs[f"{name}=={__version__}"]


def test_make_dist_builds_a_wheel_and_an_sdist_of_every_distribution(wheels: Path) -> None:
    built = sorted(p.name for p in wheels.iterdir())
    expected = sorted(
        f"{canonical(name).replace('-', '_')}-{__version__}{suffix}"
        for name in dists()
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    assert built == expected


def _tracked_files(package: str) -> set[str]:
    """The files of a package folder under version control, but the dashboard's sources."""
    done = subprocess.run(
        ["git", "ls-files", "--", package],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return {f for f in done.stdout.splitlines() if not f.startswith(f"{package}/ui/")}


@pytest.mark.parametrize("name", sorted(dists()))
def test_a_wheel_holds_every_file_of_its_package(wheels: Path, name: str) -> None:
    package = dists()[name].package
    (wheel,) = wheels.glob(f"{canonical(name).replace('-', '_')}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = {n for n in archive.namelist() if ".dist-info/" not in n}
    assert files == _tracked_files(package)


@pytest.mark.parametrize("name", sorted(dists()))
def test_a_wheel_installs_and_imports_in_a_fresh_environment(
    venvs: dict[str, Venv], wheels: Path, name: str
) -> None:
    venv = venv_of(venvs, name)
    package = dists()[name].package
    done = venv.run(f"import {package}; print({package}.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(venv.site_packages())
    installed = venv.installed()
    assert installed[name].version == __version__
    # every EverTask distribution came from the wheels just built, not from elsewhere
    for sibling in set(installed) & set(dists()):
        assert _record(installed[sibling]) >= _wheel_record(wheels, sibling), sibling


def _record(dist: Distribution) -> set[tuple[str, str]]:
    return {
        (str(f), f.hash.value) for f in dist.files or [] if f.hash and ".dist-info" not in str(f)
    }


def _wheel_record(wheels: Path, name: str) -> set[tuple[str, str]]:
    (wheel,) = wheels.glob(f"{canonical(name).replace('-', '_')}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in archive.read(record).decode().splitlines()]
    return {
        (path, digest.partition("=")[2])
        for path, digest, _ in rows
        if digest and ".dist-info" not in path
    }


def _closure(installed: dict[str, Distribution], root: str) -> set[str]:
    """``root`` and everything its requirements need, by the installed metadata."""
    environment = {**default_environment(), "extra": ""}
    found: set[str] = set()
    pending = [root]
    while pending:
        name = canonical(pending.pop())
        if name in found:
            continue
        found.add(name)
        for line in installed[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pending.append(requirement.name)
    return found


def test_evertask_abstractions_brings_pydantic_and_nothing_else(venvs: dict[str, Venv]) -> None:
    installed = venv_of(venvs, "evertask-abstractions").installed()
    pydantic = _closure(installed, "pydantic")
    assert {"pydantic", "pydantic-core", "typing-extensions"} <= pydantic
    assert set(installed) - {"pip", "setuptools"} == {"evertask-abstractions"} | pydantic


def test_evertask_storage_sqlite_brings_the_core_and_the_sql_base(venvs: dict[str, Venv]) -> None:
    installed = venv_of(venvs, "evertask-storage-sqlite").installed()
    assert {
        "evertask",
        "evertask-abstractions",
        "evertask-storage-efcore-like",
        "sqlalchemy",
        "aiosqlite",
        "alembic",
    } <= set(installed)
    assert not {"fastapi", "asyncpg", "aiomysql", "evertask-monitor-api"} & set(installed)


def test_the_extras_of_evertask_install_the_sibling_distributions(venvs: dict[str, Venv]) -> None:
    venv = venvs[EXTRAS]
    installed = venv.installed()
    for name in ("evertask-storage-sqlite", "evertask-storage-efcore-like", "evertask-monitor-api"):
        assert installed[name].version == __version__
    assert not {"evertask-storage-postgres", "evertask-logging", "asyncpg"} & set(installed)
    done = venv.run(
        "import json, evertask_storage_sqlite, evertask_monitor_api; "
        "from evertask_monitor_api.routes.config import package_version; "
        "print(json.dumps(package_version()))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == __version__


def test_the_console_script_of_an_installed_wheel_runs(venvs: dict[str, Venv]) -> None:
    """``evertask`` as a user gets it: the entry point of the evertask wheel, with a storage."""
    venv = venvs[EXTRAS]
    script = venv.python.parent / ("evertask.exe" if os.name == "nt" else "evertask")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    def evertask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            capture_output=True,
            text=True,
            cwd=venv.path,
            env=env,
            timeout=TIMEOUT,
            check=False,
        )

    done = evertask("schedule", "0 9 * * MON", "--zone", "Europe/Rome", "--count", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["occurrences"]) == 2
    db = venv.path / "cli.db"
    done = evertask("db", "upgrade", "--storage", f"sqlite:///{db.name}")
    assert done.returncode == 0, done.stderr
    done = evertask("db", "current", "--storage", str(db), "--check")
    assert done.returncode == 0, done.stdout + done.stderr
