"""The import graph of the whole package, read from its source, and the rules it is held to.

Built on :mod:`tests.room_layout` (the same reading of import statements the rooms' layout
tests use): every import counts, deferred (function-level) ones included, except those
under ``if TYPE_CHECKING:``. An import of a registered old path (``immuno/_moved.py``)
counts as an import of the module it resolves to, since that is the module that runs.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable, Mapping
from pathlib import Path

from .room_layout import PACKAGE_ROOT, import_sites, owning_module, room_modules

PACKAGE_DIR = PACKAGE_ROOT / "immuno"
#: modules allowed under the size floor: the entry point and package interfaces
ENTRY_POINTS = frozenset({"__init__.py", "__main__.py"})
#: a module shorter than this is folded into the module it serves (unless an entry point)
MIN_LINES = 30


def package_modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module and package under ``root`` (default: all of ``immuno/``), by dotted name."""
    return room_modules(root)


def _literal_moves(call: ast.Call) -> dict[str, str]:
    package, moves = call.args[0], call.args[1]
    if not isinstance(package, ast.Constant) or not isinstance(moves, ast.Dict):
        raise ValueError(f"register_moves at line {call.lineno}: expected literal arguments")
    found = {}
    for key, value in zip(moves.keys, moves.values, strict=True):
        if not isinstance(key, ast.Constant) or not isinstance(value, ast.Constant):
            raise ValueError(f"register_moves at line {call.lineno}: expected literal paths")
        found[f"{package.value}.{key.value}"] = f"{package.value}.{value.value}"
    return found


def registered_moves(modules: dict[str, Path]) -> dict[str, str]:
    """Old absolute path -> new absolute path, from every ``register_moves(...)`` call."""
    moves: dict[str, str] = {}
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "register_moves"
            ):
                moves.update(_literal_moves(node))
    return moves


def old_path(name: str, moves: dict[str, str]) -> str | None:
    """The registered old path a dotted name starts with, if any."""
    return next((old for old in moves if name == old or name.startswith(f"{old}.")), None)


def resolve(name: str, moves: dict[str, str]) -> str:
    """A dotted name with its registered old path, if any, replaced by the new one."""
    old = old_path(name, moves)
    return name if old is None else moves[old] + name[len(old) :]


def package_graph(
    modules: dict[str, Path],
    moves: dict[str, str],
    by_name: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports, at any depth (old paths resolved).

    ``by_name``: the modules a module imports by name at run time (``importlib``), which
    no import statement shows (see :func:`imports_by_name`).
    """
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {owning_module(resolve(s.name, moves), modules) for s in import_sites(path)}
        targets |= {owning_module(t, modules) for t in (by_name or {}).get(name, ())}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def imports_by_name() -> dict[str, set[str]]:
    """The package's imports by name: the assay subcommands the CLI registers and the
    rooms' input checks the whole-batch validation runs."""
    import immuno.cli
    import immuno.contract.validate

    return {
        "immuno.cli": set(immuno.cli.ASSAY_COMMANDS),
        "immuno.contract.validate": set(immuno.contract.validate.ROOM_CHECKS.values()),
    }


def _comment_lines(source: str) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


def deferred_without_reason(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of each deferred import with no comment on its lines or the line above.

    A deferred import is a debt the reader must be told the reason for (the start-up cost of
    a heavy library, or a layering need); the comment is where it is told.
    """
    comments = _comment_lines(path.read_text(encoding="utf-8"))
    return [
        (site.line, site.name)
        for site in import_sites(path)
        if site.deferred and not comments.intersection(range(site.line - 1, site.last + 1))
    ]


def short_modules(modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(module, lines)`` of each module under :data:`MIN_LINES` that is no entry point."""
    short = []
    for name, path in modules.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if path.name not in ENTRY_POINTS and lines < MIN_LINES:
            short.append((name, lines))
    return short
