"""What the packaging tests share: the distributions of ``packaging/`` and the imports of
each package folder, read from the source text (nothing is imported)."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent.parent


@cache
def build_script() -> ModuleType:
    """``scripts/build_dists.py``, loaded as a module."""
    spec = importlib.util.spec_from_file_location("build_dists", ROOT / "scripts/build_dists.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_dists", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def canonical(name: str) -> str:
    """PEP 503's normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dist:
    name: str
    package: str
    version: str
    dependencies: tuple[Requirement, ...]
    extras: dict[str, tuple[Requirement, ...]]


@cache
def dists() -> dict[str, Dist]:
    """Every distribution of ``packaging/``, by name."""
    found: dict[str, Dist] = {}
    for dist in build_script().distributions():
        extras = dist.project.get("optional-dependencies", {})
        found[dist.name] = Dist(
            dist.name,
            dist.package,
            dist.version,
            tuple(Requirement(r) for r in dist.project_list("dependencies")),
            {k: tuple(Requirement(r) for r in v) for k, v in extras.items()},
        )
    return found


def dist_of_package() -> dict[str, str]:
    """The distribution shipping each top-level package of the repository."""
    return {d.package: d.name for d in dists().values()}


# -- imports ----------------------------------------------------------------------------------

EAGER = "eager"  # at module level: runs when the module is imported
GUARDED = "guarded"  # inside a function, or a ``try`` (the code handles its absence)
TYPING = "typing"  # under ``if TYPE_CHECKING:``: never runs


@dataclass(frozen=True)
class ImportUse:
    module: str  # the absolute dotted name imported (``from a import b``: ``a.b``)
    kind: str
    where: str  # path:line


def _kind(stack: list[ast.AST]) -> str:
    kind = EAGER
    for node in stack:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return TYPING
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try):
            kind = GUARDED
    return kind


def _walk(node: ast.AST, stack: list[ast.AST]) -> Iterator[tuple[ast.AST, list[ast.AST]]]:
    yield node, stack
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, [*stack, node])


def package_imports(package: str) -> list[ImportUse]:
    """Every absolute import in the package folder ``package`` (relative ones stay inside)."""
    found: list[ImportUse] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).as_posix()
        for node, stack in _walk(tree, []):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                found.append(ImportUse(name, _kind(stack), f"{rel}:{node.lineno}"))
    return found


@cache
def _installed_packages() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@cache
def _files_of(distribution: str) -> frozenset[str]:
    files = importlib.metadata.distribution(distribution).files or []
    return frozenset(f.as_posix() for f in files)


def distribution_of(module: str) -> str | None:
    """The distribution providing ``module`` (a dotted name, possibly ``package.attribute``):
    a package of this repository, a third-party one installed here, or ``None`` for the
    standard library."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names:
        return None
    ours = dist_of_package()
    if top in ours:
        return ours[top]
    candidates = _installed_packages().get(top, [])
    if not candidates:
        raise LookupError(f"no installed distribution provides {top!r} (imported as {module})")
    if len(set(candidates)) == 1:
        return canonical(candidates[0])
    # a namespace package (``opentelemetry``): the distribution holding the deepest module
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        base = "/".join(parts[:end])
        owners = {
            canonical(c)
            for c in candidates
            if f"{base}.py" in _files_of(c) or f"{base}/__init__.py" in _files_of(c)
        }
        if len(owners) == 1:
            return owners.pop()
    raise LookupError(f"{module}: provided by several distributions {sorted(set(candidates))}")
