"""Each distribution of ``packaging/`` declares exactly what its package imports.

- an import that runs when a module is imported (module level) is a dependency;
- an import inside a function or a ``try`` is a dependency or in an extra;
- a declared requirement that nothing imports has a reason in ``DECLARED_WITHOUT_IMPORT``,
  an import that is not declared one in ``IMPORTED_WITHOUT_DECLARATION``;
- the versions and the sibling pins move in lock-step with ``evertask/version.py``;
- the root project (the developer's install of everything) has every requirement too.

Imports under ``if TYPE_CHECKING:`` never run and count for nothing.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from evertask.version import __version__

from .distributions import (
    EAGER,
    GUARDED,
    ROOT,
    build_script,
    canonical,
    dist_of_package,
    distribution_of,
    dists,
    package_imports,
)

_SQL_DRIVER = "the driver SQLAlchemy's dialect loads for the URL (never imported by name)"
_OTEL_SDK = (
    "the otel extra: the SDK and exporter the application configures (evertask uses the API)"
)
_CLI = "the evertask command line (evertask.cli, the console script)"
# (distribution, requirement): why it is declared although no module imports it.
DECLARED_WITHOUT_IMPORT = {
    ("evertask", "tzdata"): "zoneinfo's time-zone database where the OS has none (Windows)",
    ("evertask", "click"): _CLI,
    ("evertask", "rich"): _CLI,
    ("evertask", "opentelemetry-sdk"): _OTEL_SDK,
    ("evertask", "opentelemetry-exporter-otlp-proto-http"): _OTEL_SDK,
    ("evertask-storage-sqlite", "aiosqlite"): _SQL_DRIVER,
    ("evertask-storage-mysql", "aiomysql"): _SQL_DRIVER,
    ("evertask-storage-sqlserver", "aioodbc"): _SQL_DRIVER,
    ("evertask-monitor-api", "websockets"): "Uvicorn's WebSocket protocol (the live events)",
    ("evertask-logging", "structlog"): (
        "the structlog extra: add_task_context is a structlog processor (needs no import)"
    ),
}

# (distribution, requirement): why its package may import it without declaring it.
IMPORTED_WITHOUT_DECLARATION = {
    ("evertask", "pytest"): (
        "evertask.testing is a pytest plugin (the pytest11 entry point): only pytest loads it"
    ),
    ("evertask", "evertask-storage-efcore-like"): (
        "the db commands of the command line migrate a SQL storage; each SQL extra (sqlite, "
        "postgres, mysql, sqlserver) brings it, and without one the command says which to install"
    ),
}


def _used(name: str) -> dict[str, dict[str, list[str]]]:
    """``{distribution: {kind: [where, ...]}}`` of what the package of ``name`` imports."""
    dist = dists()[name]
    used: dict[str, dict[str, list[str]]] = {}
    for use in package_imports(dist.package):
        provider = distribution_of(use.module)
        if provider is not None and provider != name:
            used.setdefault(provider, {}).setdefault(use.kind, []).append(use.where)
    return used


DIST_NAMES = sorted(dists())


def test_every_package_folder_ships_in_exactly_one_distribution() -> None:
    folders = sorted(
        p.name
        for p in ROOT.iterdir()
        if p.name.startswith("evertask") and (p / "__init__.py").is_file()
    )
    packages = [d.package for d in dists().values()]
    assert sorted(packages) == folders, "a package folder without a distribution, or the reverse"
    assert len(DIST_NAMES) == 9
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = root["tool"]["setuptools"]["packages"]["find"]["include"]
    assert set(folders) <= set(include), "the development install misses a package folder"


def test_versions_and_sibling_pins_move_in_lock_step() -> None:
    script = build_script()
    assert script.source_version() == __version__
    assert script.version_problems(script.distributions(), __version__) == []
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["project"]["version"] == __version__


@pytest.mark.parametrize("name", DIST_NAMES)
def test_a_distribution_declares_what_its_package_imports(name: str) -> None:
    dist = dists()[name]
    dependencies = {canonical(r.name) for r in dist.dependencies}
    in_extras = {canonical(r.name) for reqs in dist.extras.values() for r in reqs}
    missing: list[str] = []
    for provider, kinds in sorted(_used(name).items()):
        if (name, provider) in IMPORTED_WITHOUT_DECLARATION:
            continue
        if EAGER in kinds and provider not in dependencies:
            missing.append(f"{provider} (imported at module level: {kinds[EAGER][0]})")
        elif GUARDED in kinds and provider not in dependencies | in_extras:
            missing.append(f"{provider} (imported lazily: {kinds[GUARDED][0]}): not even an extra")
    assert not missing, f"packaging/{name}/pyproject.toml does not declare:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", DIST_NAMES)
def test_a_distribution_declares_only_what_its_package_imports(name: str) -> None:
    dist = dists()[name]
    used = {p for p, kinds in _used(name).items() if EAGER in kinds or GUARDED in kinds}
    declared = [*dist.dependencies, *(r for reqs in dist.extras.values() for r in reqs)]
    unused = sorted(
        {
            canonical(r.name)
            for r in declared
            if canonical(r.name) not in used
            and canonical(r.name) != name  # ``all = ["evertask[sqlite,...]"]``
            and (name, canonical(r.name)) not in DECLARED_WITHOUT_IMPORT
        }
    )
    assert not unused, (
        f"packaging/{name}/pyproject.toml declares what its package never imports: {unused} "
        "(drop it, or give the reason in DECLARED_WITHOUT_IMPORT)"
    )


def test_evertask_abstractions_depends_on_pydantic_only() -> None:
    assert [r.name for r in dists()["evertask-abstractions"].dependencies] == ["pydantic"]
    assert not dists()["evertask-abstractions"].extras


def test_the_extras_of_evertask_name_the_sibling_distributions() -> None:
    extras = {
        extra: sorted(f"{r.name}{sorted(r.extras) or ''}{r.specifier}" for r in reqs)
        for extra, reqs in dists()["evertask"].extras.items()
    }
    pin = f"=={__version__}"
    assert extras["sqlite"] == [f"evertask-storage-sqlite{pin}"]
    assert extras["postgres"] == [f"evertask-storage-postgres{pin}"]
    assert extras["mysql"] == [f"evertask-storage-mysql{pin}"]
    assert extras["sqlserver"] == extras["mssql"] == [f"evertask-storage-sqlserver{pin}"]
    assert extras["monitor"] == [f"evertask-monitor-api{pin}"]
    assert extras["logging"] == [f"evertask-logging['structlog']{pin}"]
    assert extras["testing"] == ["pytest-asyncio>=0.23", "pytest>=8"]
    (everything,) = dists()["evertask"].extras["all"]
    # everything a service runs with; the test kit's pytest stays out of production installs
    assert everything.name == "evertask" and everything.extras == set(extras) - {
        "all",
        "mssql",
        "testing",
    }


def test_the_development_install_has_every_requirement() -> None:
    """``make install`` (the root project) installs what any distribution needs."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    root_names = {
        canonical(r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip())
        for r in [
            *root["dependencies"],
            *(r for reqs in root["optional-dependencies"].values() for r in reqs),
        ]
    }
    ours = set(dists())
    missing = sorted(
        {
            f"{canonical(r.name)} ({d.name})"
            for d in dists().values()
            for r in [*d.dependencies, *(r for reqs in d.extras.values() for r in reqs)]
            if canonical(r.name) not in ours and canonical(r.name) not in root_names
        }
    )
    assert not missing, "add to the root pyproject.toml too: " + ", ".join(missing)


def test_the_scan_sorts_imports_by_when_they_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from . import distributions

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import json, pydantic.fields\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import sqlalchemy\n"
        "try:\n    import structlog\nexcept ImportError:\n    structlog = None\n"
        "def f():\n    from evertask_logging import add_structured_logging\n"
    )
    monkeypatch.setattr(distributions, "ROOT", tmp_path)
    found = {(u.module, u.kind) for u in package_imports("pkg")}
    assert found == {
        ("typing.TYPE_CHECKING", EAGER),
        ("json", EAGER),
        ("pydantic.fields", EAGER),
        ("sqlalchemy", "typing"),
        ("structlog", GUARDED),
        ("evertask_logging.add_structured_logging", GUARDED),
    }
    assert distribution_of("json") is None
    assert distribution_of("evertask_storage_mssql.storage") == "evertask-storage-sqlserver"
    assert distribution_of("jwt.exceptions") == "pyjwt"
    assert distribution_of("opentelemetry.trace") == "opentelemetry-api"
    assert distribution_of("opentelemetry.sdk.trace") == "opentelemetry-sdk"
    assert dist_of_package()["evertask"] == "evertask"


def test_set_version_moves_every_version_and_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = build_script()
    shutil.copytree(ROOT / "packaging", tmp_path / "packaging")
    (tmp_path / "evertask").mkdir()
    shutil.copy2(ROOT / "evertask/version.py", tmp_path / "evertask/version.py")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setattr(script, "PACKAGING", tmp_path / "packaging")
    monkeypatch.setattr(script, "VERSION_FILE", tmp_path / "evertask/version.py")
    script.set_version("9.8.7")
    assert script.source_version() == "9.8.7"
    moved = script.distributions()
    assert script.version_problems(moved, "9.8.7") == []
    assert script.version_problems(moved, __version__) != []
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]["version"] == "9.8.7"
    logging = tomllib.loads((tmp_path / "packaging/evertask/pyproject.toml").read_text())
    assert logging["project"]["optional-dependencies"]["logging"] == [
        "evertask-logging[structlog]==9.8.7"
    ]
