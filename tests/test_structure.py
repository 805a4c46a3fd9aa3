"""Structure rules of the repository, checked on the source text (nothing is imported).

- the modules of ``evertask`` import each other without a cycle (imports inside functions and
  under ``if TYPE_CHECKING:`` count);
- the extensions, the samples and the docs use the host's public API, never its engine;
- every package ``__init__.py`` declares ``__all__``, and every name in it exists.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = (
    "evertask",
    "evertask_abstractions",
    "evertask_logging",
    "evertask_monitor_api",
    *sorted(p.name for p in ROOT.glob("evertask_storage_*") if (p / "__init__.py").is_file()),
)


# -- module index -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @cached_property
    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def index_modules(root: Path, packages: Iterable[str]) -> dict[str, Module]:
    """Every ``.py`` file of ``packages`` (directories under ``root``), by dotted name."""
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


@cache
def repo_modules() -> dict[str, Module]:
    return index_modules(ROOT, TOP_PACKAGES)


def import_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    parts = module.package.split(".")
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def imported_modules(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """``(module name, line)`` of every import of a known module, anywhere in ``module``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                # ``import a.b.c``: the most specific module of the dotted name
                for end in range(len(parts), 0, -1):
                    target = ".".join(parts[:end])
                    if target in known:
                        yield target, node.lineno
                        break
        elif isinstance(node, ast.ImportFrom):
            base = import_base(module, node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # ``from pkg import mod``: an edge to the submodule
                    yield submodule, node.lineno
                elif base in known:
                    yield base, node.lineno


# -- import graph -------------------------------------------------------------------------------


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Edges between the given modules (self-imports dropped)."""
    return {
        name: {target for target, _ in imported_modules(module, modules) if target != name}
        for name, module in modules.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (each sorted), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest ``start -> ... -> start`` path inside ``within`` (BFS)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & within):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return []


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Readable cycles (``a -> b -> a``): the shortest one through each module of each cycle."""
    chains: list[str] = []
    for component in strongly_connected(graph):
        members = set(component)
        seen: set[tuple[str, ...]] = set()
        for start in component:
            cycle = shortest_cycle(graph, start, members)
            ring = cycle[:-1]
            pivot = ring.index(min(ring))
            canonical = tuple(ring[pivot:] + ring[:pivot])
            if canonical not in seen:
                seen.add(canonical)
                chains.append(" -> ".join([*canonical, canonical[0]]))
    return chains


def test_import_graph_finds_lazy_type_checking_and_submodule_cycles(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from .a import A\n",
        "pkg/a.py": "class A:\n    def b(self):\n        from . import b\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from ..sub import d\nimport os\n",
        "pkg/sub/d.py": "def f():\n    from pkg.sub.c import x\n",
        "pkg/e.py": "from pkg import A\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(index_modules(tmp_path, ["pkg"]))
    assert graph["pkg.sub.c"] == {"pkg.sub.d"}
    assert graph["pkg.e"] == {"pkg"}
    assert import_cycles(graph) == [
        "pkg.a -> pkg.b -> pkg.a",
        "pkg.sub.c -> pkg.sub.d -> pkg.sub.c",
    ]


def test_evertask_import_graph_has_no_cycle() -> None:
    evertask = {n: m for n, m in repo_modules().items() if n.split(".")[0] == "evertask"}
    cycles = import_cycles(import_graph(evertask))
    assert not cycles, "import cycles in evertask (break them; lazy imports count):\n" + "\n".join(
        cycles
    )


# -- the engine stays behind the host API ------------------------------------------------------

ENGINE_FREE = ("evertask_logging", "evertask_monitor_api", "evertask/telemetry", "samples")
FORBIDDEN_TEXT = re.compile(
    r"\.engine[.)]|\bhost\._?engine\b|from evertask\.engine import|\bimport evertask\.engine\b"
)
ALLOWED_TEXT = ("benchmarks.engine",)  # the benchmark module of that name, not a host's engine


def engine_free_files() -> Iterator[Path]:
    for folder in ENGINE_FREE:
        yield from sorted((ROOT / folder).rglob("*.py"))
    yield from sorted((ROOT / "docs").rglob("*.md"))
    yield ROOT / "README.md"


def test_extensions_samples_and_docs_do_not_reach_into_the_engine() -> None:
    modules = repo_modules()
    found: list[str] = []
    for path in engine_free_files():
        rel = path.relative_to(ROOT).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        hits = set()
        for number, line in enumerate(lines, 1):
            text = line
            for allowed in ALLOWED_TEXT:
                text = text.replace(allowed, "")
            if FORBIDDEN_TEXT.search(text):
                hits.add(number)
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = modules.get(name)
        if module is not None:  # relative imports too, e.g. ``from ..engine import Engine``
            hits |= {n for t, n in imported_modules(module, modules) if t == "evertask.engine"}
        found.extend(f"{rel}:{n}: {lines[n - 1].strip()}" for n in sorted(hits))
    assert not found, "use the host's public API instead of its engine:\n" + "\n".join(found)


# -- __all__ of every package ------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for item in node.elts:
            yield from _targets(item)
    elif isinstance(node, ast.Starred):
        yield from _targets(node.value)


@dataclass
class Bindings:
    """Names a module binds at import time, and those bound only for type checkers."""

    runtime: dict[str, ast.stmt] = field(default_factory=dict)
    type_only: set[str] = field(default_factory=set)
    star_from: list[str] = field(default_factory=list)
    lazy: set[str] = field(default_factory=set)  # string literals of a module ``__getattr__``
    all_names: list[str] | None = None


def _bind(module: Module, body: list[ast.stmt], out: Bindings, type_only: bool) -> None:
    for node in body:
        names: list[str] = []
        if isinstance(node, ast.If):
            _bind(module, node.body, out, type_only or _is_type_checking(node.test))
            _bind(module, node.orelse, out, type_only)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                _bind(module, block, out, type_only)
        elif isinstance(node, ast.With):
            _bind(module, node.body, out, type_only)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
            if node.name == "__getattr__":
                out.lazy |= {
                    c.value
                    for c in ast.walk(node)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
        elif isinstance(node, ast.Import):
            names = [a.asname or a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = import_base(module, node)
            if node.names[0].name == "*":
                out.star_from.append(base)
            names = [a.asname or a.name for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Assign):
            names = [n for target in node.targets for n in _targets(target)]
            if names == ["__all__"] and not type_only:
                out.all_names = _string_list(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names = list(_targets(node.target))
            if names == ["__all__"] and node.value is not None and not type_only:
                extra = _string_list(node.value)
                if isinstance(node, ast.AugAssign) and out.all_names is not None:
                    out.all_names = [*out.all_names, *(extra or [])]
                else:
                    out.all_names = extra
        for name in names:
            if type_only:
                out.type_only.add(name)
            else:
                out.runtime[name] = node


def _string_list(value: ast.expr) -> list[str] | None:
    if not isinstance(value, ast.List | ast.Tuple):
        return None
    names = [e.value for e in value.elts if isinstance(e, ast.Constant)]
    strings = [n for n in names if isinstance(n, str)]
    return strings if len(strings) == len(value.elts) else None


@cache
def bindings(name: str) -> Bindings:
    module = repo_modules()[name]
    out = Bindings()
    _bind(module, module.tree.body, out, type_only=False)
    return out


def exists(module_name: str, name: str, seen: frozenset[tuple[str, str]] = frozenset()) -> bool:
    """Whether ``from module_name import name`` works, following re-exports inside the repo."""
    modules = repo_modules()
    if module_name not in modules:
        return True  # a third-party or standard module: not ours to check
    if f"{module_name}.{name}" in modules or (module_name, name) in seen:
        return True
    seen = seen | {(module_name, name)}
    found = bindings(module_name)
    node = found.runtime.get(name)
    if isinstance(node, ast.ImportFrom):  # a re-export: the source must have it
        source = import_base(modules[module_name], node)
        original = next(a.name for a in node.names if (a.asname or a.name) == name)
        return exists(source, original, seen)
    if node is not None:
        return True
    if name in found.type_only and name in found.lazy:
        return True  # imported for type checkers, served at run time by ``__getattr__``
    return any(exists(source, name, seen) for source in found.star_from)


def test_package_inits_declare_all_and_every_name_exists() -> None:
    problems: list[str] = []
    for name, module in sorted(repo_modules().items()):
        if not module.is_package:
            continue
        rel = module.path.relative_to(ROOT).as_posix()
        found = bindings(name)
        if found.all_names is None:
            if found.runtime or found.type_only:
                problems.append(f"{rel}: no literal __all__ list of its public names")
            continue  # a docstring-only package (e.g. migration scripts) exports nothing
        missing = [n for n in found.all_names if not exists(name, n)]
        if missing:
            problems.append(f"{rel}: __all__ names that do not exist: {missing}")
        duplicates = sorted({n for n in found.all_names if found.all_names.count(n) > 1})
        if duplicates:
            problems.append(f"{rel}: __all__ lists these names twice: {duplicates}")
    assert not problems, "\n".join(problems)


def test_library_code_bounds_waits_with_asyncio_timeout_not_wait_for() -> None:
    """On Python 3.11 ``asyncio.wait_for`` returns normally when its task is cancelled just
    as the awaited thing finishes: the cancellation is lost (a host's poll loop napped on
    and ``stop()`` hung). ``async with asyncio.timeout(...)`` keeps it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in TOP_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "wait_for(" in line and "asyncio" in line
    ]
    assert offenders == []
