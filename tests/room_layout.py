"""What the layout tests of an assay room read from its source: modules and their imports.

An assay room cut by stage (docs/architecture.md, 2.1 and 2.2) is checked on its source,
not by importing it, so an import deferred into a function body counts like any other;
``tests/import_graph.py`` reads the whole package the same way.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """The dotted name of a source file under the project (``immuno/x/__init__.py`` -> ``immuno.x``)."""
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_modules(room: Path) -> dict[str, Path]:
    """Every module and package of a room, by dotted name."""
    return {module_name(p): p for p in sorted(room.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass(frozen=True)
class ImportSite:
    """One name an import statement brings in.

    ``deferred`` says the statement lies in a function body (it runs when the function is
    first called, not when the module is imported); ``line`` and ``last`` are the first and
    last lines of the statement.
    """

    name: str
    line: int
    deferred: bool
    last: int


def import_sites(path: Path) -> list[ImportSite]:
    """Every dotted name a file imports at any depth, deferred imports marked as such.

    ``from a.b import c`` gives ``a.b.c`` (``c`` may be a module or a name in ``a.b``:
    :func:`owning_module` tells which). Imports under ``if TYPE_CHECKING:`` are left out:
    they never run. Relative imports are left out too (the project writes none).
    """
    found: list[ImportSite] = []
    stack: list[tuple[ast.AST, bool]] = [(ast.parse(path.read_text(encoding="utf-8")), False)]
    while stack:
        node, in_function = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            last = getattr(child, "end_lineno", None) or getattr(child, "lineno", 0)
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found += [
                    ImportSite(f"{child.module}.{alias.name}", child.lineno, in_function, last)
                    for alias in child.names
                ]
            elif isinstance(child, ast.Import):
                found += [
                    ImportSite(alias.name, child.lineno, in_function, last) for alias in child.names
                ]
            function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            stack.append((child, in_function or function))
    return sorted(found, key=lambda site: (site.line, site.name))


def imported_names(path: Path) -> list[tuple[str, int]]:
    """Every dotted name a file imports at any depth, with its line (see :func:`import_sites`)."""
    return [(site.name, site.line) for site in import_sites(path)]


def owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module a dotted name lies in (a function -> its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(
    modules: dict[str, Path], ignore: frozenset[str] = frozenset()
) -> dict[str, set[str]]:
    """Module -> the room's modules it imports (``ignore``: e.g. the room's own package,
    which every submodule's import runs through anyway)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {owning_module(t, modules) for t, _ in imported_names(path)}
        graph[name] = {t for t in targets if t is not None and t != name and t not in ignore}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle found by a depth-first walk, as the path that closes it."""
    done: set[str] = set()
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start])
    return found


def import_old_path(
    package: str, old: str, monkeypatch: pytest.MonkeyPatch, match: str
) -> tuple[ModuleType, list[warnings.WarningMessage]]:
    """Import ``package.old`` afresh, as a notebook of the former layout would, expecting the
    DeprecationWarning ``match``; the module and the warnings caught.

    The import binds the old name on the package and caches the module, so both are put
    back afterwards (``monkeypatch``): each test sees the first import of the old path.
    """
    room = importlib.import_module(package)
    monkeypatch.setattr(room, old, getattr(room, old, None), raising=False)
    monkeypatch.delitem(sys.modules, f"{package}.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=match) as caught:
        module = importlib.import_module(f"{package}.{old}")
    return module, list(caught)
