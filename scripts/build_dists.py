"""Build every EverTask distribution (a wheel and an sdist each) into ``dist/``.

Each distribution is described by ``packaging/<name>/pyproject.toml`` (and its
``README.md``). The package folders stay at the repository root, so each distribution is
staged in a temporary directory, its project file and README with a copy of its package
folder, and built there with ``python -m build --no-isolation`` (the sdist first, then the
wheel from the sdist, so a file missing from the sdist fails the build). The versions move
in lock-step: a project file whose version or sibling pin differs from
``evertask/version.py`` stops the build before anything is built.

    python scripts/build_dists.py                       # every distribution into dist/
    python scripts/build_dists.py --out wheelhouse      # elsewhere
    python scripts/build_dists.py --set-version 0.2.0   # move every version and pin
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
VERSION_FILE = ROOT / "evertask" / "version.py"
# Copied with a package folder, yet never part of a distribution: caches and the sources of
# the dashboard (its build, ``static/``, is what ships).
IGNORED = shutil.ignore_patterns("__pycache__", "*.py[cod]", "node_modules", "ui")
_VERSION = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)


@dataclass(frozen=True)
class Distribution:
    """One distribution: its name, project folder, package folder and declared metadata."""

    name: str
    folder: Path
    package: str
    project: dict[str, object]

    @property
    def version(self) -> str:
        return str(self.project["version"])

    def requirements(self) -> list[str]:
        """Its dependencies and the requirements of its extras, as written."""
        found = [str(r) for r in self.project_list("dependencies")]
        extras = self.project.get("optional-dependencies", {})
        assert isinstance(extras, dict)
        for values in extras.values():
            found.extend(str(r) for r in values)
        return found

    def project_list(self, key: str) -> list[object]:
        value = self.project.get(key, [])
        assert isinstance(value, list)
        return value


def source_version() -> str:
    """The version of every distribution (``evertask/version.py``)."""
    found = _VERSION.search(VERSION_FILE.read_text(encoding="utf-8"))
    if found is None:
        raise SystemExit(f"no __version__ line in {VERSION_FILE.relative_to(ROOT)}")
    return found.group(1)


def distributions() -> list[Distribution]:
    """Every ``packaging/*/pyproject.toml``, by name."""
    found: list[Distribution] = []
    for path in sorted(PACKAGING.glob("*/pyproject.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        project = data["project"]
        include = data["tool"]["setuptools"]["packages"]["find"]["include"]
        packages = [p for p in include if "*" not in p]
        if len(packages) != 1:
            raise SystemExit(f"{path.relative_to(ROOT)}: include one package folder, not {include}")
        found.append(Distribution(project["name"], path.parent, packages[0], project))
    return found


def _pinned_name(requirement: str) -> tuple[str, str] | None:
    """``("evertask", "0.1.0")`` for ``"evertask==0.1.0"`` (extras and markers allowed)."""
    found = re.match(
        r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^;,\s]+)", requirement
    )
    return (found.group(1), found.group(2)) if found else None


def version_problems(dists: Sequence[Distribution], version: str) -> list[str]:
    """Why the project files are not in lock-step with ``version`` (empty when they are)."""
    names = {d.name for d in dists}
    problems: list[str] = []
    for dist in dists:
        where = dist.folder.relative_to(ROOT).as_posix()
        if dist.version != version:
            problems.append(f"{where}: version {dist.version}, not {version}")
        for requirement in dist.requirements():
            name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
            if name not in names or name == dist.name:
                continue
            pinned = _pinned_name(requirement)
            if pinned is None or pinned[1] != version:
                problems.append(f"{where}: {requirement!r} must pin =={version}")
    return problems


def set_version(new: str) -> None:
    """Move ``evertask/version.py``, every project version and every sibling pin to ``new``."""
    old = source_version()
    dists = distributions()
    names = "|".join(re.escape(d.name) for d in dists)
    VERSION_FILE.write_text(
        _VERSION.sub(f'__version__ = "{new}"', VERSION_FILE.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    pin = re.compile(rf'"((?:{names})(?:\[[^\]]*\])?)=={re.escape(old)}"')
    for dist in dists:
        path = dist.folder / "pyproject.toml"
        text = path.read_text(encoding="utf-8")
        text = text.replace(f'\nversion = "{old}"\n', f'\nversion = "{new}"\n', 1)
        path.write_text(pin.sub(rf'"\1=={new}"', text), encoding="utf-8")
    root = ROOT / "pyproject.toml"
    text = root.read_text(encoding="utf-8")
    root.write_text(
        text.replace(f'\nversion = "{old}"\n', f'\nversion = "{new}"\n', 1), encoding="utf-8"
    )


def stage(dist: Distribution, into: Path) -> Path:
    """A directory holding the distribution's project file, README and package folder."""
    staged = into / dist.name
    staged.mkdir()
    shutil.copy2(dist.folder / "pyproject.toml", staged / "pyproject.toml")
    shutil.copy2(dist.folder / "README.md", staged / "README.md")
    shutil.copytree(ROOT / dist.package, staged / dist.package, ignore=IGNORED)
    return staged


def build(dist: Distribution, workdir: Path, out: Path) -> str:
    """Build the wheel and the sdist of ``dist`` into ``out``; the build's output on failure."""
    staged = stage(dist, workdir)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(staged)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"{dist.name}: the build failed\n{done.stdout}\n{done.stderr}"
    return ""


def normalized(name: str) -> str:
    """The file-name form of a distribution name (``evertask_storage_sqlite``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def build_all(out: Path) -> list[Path]:
    """Every wheel and sdist into ``out`` (earlier builds of these distributions removed)."""
    dists = distributions()
    problems = version_problems(dists, source_version())
    if problems:
        raise SystemExit("the versions are not in lock-step:\n" + "\n".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    prefixes = tuple(f"{normalized(d.name)}-" for d in dists)
    for old in out.iterdir():
        if old.name.startswith(prefixes) and old.name.endswith((".whl", ".tar.gz")):
            old.unlink()
    with (
        tempfile.TemporaryDirectory(prefix="evertask-dists-") as workdir,
        ThreadPoolExecutor(max_workers=len(dists)) as pool,
    ):
        failures = [f for f in pool.map(lambda d: build(d, Path(workdir), out), dists) if f]
    if failures:
        raise SystemExit("\n".join(failures))
    return sorted(p for p in out.iterdir() if p.name.startswith(prefixes))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument("--set-version", metavar="VERSION", help="move every version to this")
    args = parser.parse_args(argv)
    if args.set_version:
        set_version(args.set_version)
        print(f"every distribution is now version {args.set_version}")
        return 0
    for path in build_all(args.out.resolve()):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
