"""The whole package's imports: no cycle, deferred imports that say why, no tiny modules,
no registered old path used inside the package, nothing below the command line importing
it, and the top level grouped (docs/architecture.md, 2)."""

from __future__ import annotations

import importlib
from pathlib import Path

from immuno._moved import moved_paths

from .import_graph import (
    PACKAGE_DIR,
    deferred_without_reason,
    imports_by_name,
    old_path,
    package_graph,
    package_modules,
    registered_moves,
    short_modules,
)
from .room_layout import cycles, import_sites

#: what the top of the package holds: entry points, shared helpers, rooms and packages
TOP_LEVEL = {
    "__init__.py",
    "__main__.py",
    "_lazy.py",
    "_moved.py",
    "cli.py",
    "errors.py",
    "io.py",
    "chemokines",
    "chimerism",
    "commands",
    "contract",
    "cytometry",
    "data",
    "demo",
    "report",
    "run",
    "study",
}


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    modules = {}
    for name, text in files.items():
        path = root / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        modules[name] = path
    return modules


def test_the_graph_sees_deferred_imports_old_paths_and_not_type_checking(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "pkg.a": "import pkg.b\n",
            "pkg.b": "def f():\n    from pkg.a import x\n    return x\n",
            "pkg.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            "pkg.d": "def g():\n    # layering: d is loaded by c's users only\n    from pkg import old\n",
            "pkg.e": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.d import g\n",
        },
    )
    moves = {"pkg.old": "pkg.c"}
    graph = package_graph(modules, moves)
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set(), "pkg.d": {"pkg.c"},
                     "pkg.e": set()}  # fmt: skip
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert deferred_without_reason(modules["pkg.b"]) == [(2, "pkg.a.x")]
    assert deferred_without_reason(modules["pkg.d"]) == []  # the comment on the line above
    assert [s.deferred for s in import_sites(modules["pkg.d"])] == [True]
    assert old_path("pkg.old.thing", moves) == "pkg.old" and old_path("pkg.older", moves) is None
    assert short_modules({"pkg.a": modules["pkg.a"]}) == [("pkg.a", 1)]


def test_the_moves_read_from_the_source_are_the_ones_registered_at_run_time() -> None:
    modules = package_modules()
    for name, path in modules.items():
        if "register_moves(" in path.read_text(encoding="utf-8"):
            importlib.import_module(name)  # the moves are registered when it is imported
    assert registered_moves(modules) == moved_paths()


def test_no_import_cycle_anywhere_not_even_through_a_deferred_import() -> None:
    modules = package_modules()
    found = cycles(package_graph(modules, registered_moves(modules), imports_by_name()))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_deferred_import_says_why() -> None:
    # on its line or the line above: the start-up cost of a heavy library, or a layering need
    missing = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {name}"
        for path in package_modules().values()
        for line, name in deferred_without_reason(path)
    ]
    assert not missing, "deferred imports without a reason:\n" + "\n".join(missing)


def test_no_module_under_the_size_floor_but_entry_points_and_package_interfaces() -> None:
    assert short_modules(package_modules()) == []


def test_nothing_in_the_package_imports_a_registered_old_path() -> None:
    modules = package_modules()
    moves = registered_moves(modules)
    used = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{site.line} imports {site.name} (now "
        f"{moves[old_path(site.name, moves)]})"
        for path in modules.values()
        for site in import_sites(path)
        if old_path(site.name, moves)
    ]
    assert not used, "old paths used inside the package:\n" + "\n".join(used)


def test_imports_by_name_name_modules_of_the_package() -> None:
    modules = package_modules()
    named = imports_by_name()
    assert named["immuno.cli"] == {
        f"immuno.commands.{r}" for r in ("cytometry", "chemokines", "chimerism")
    }
    assert {"immuno.cytometry.checks", "immuno.chemokines.checks"} <= named[
        "immuno.contract.validate"
    ]
    assert set().union(*named.values()) <= set(modules)
    graph = package_graph(modules, {}, named)
    assert "immuno.commands.cytometry" in graph["immuno.cli"]


def test_nothing_below_the_command_line_imports_it() -> None:
    # the command line (and ``python -m immuno``) imports its subcommands, never the reverse
    graph = package_graph(package_modules(), {}, imports_by_name())
    command_line = {"immuno.cli", "immuno.__main__"}
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if (target in command_line and module not in command_line)
        or (
            target.startswith("immuno.commands")
            and module not in command_line
            and not module.startswith("immuno.commands")
        )
    ]
    assert not wrong, wrong
    assert graph["immuno.run.steps"].isdisjoint(command_line)


def test_the_top_level_is_grouped() -> None:
    top = {
        p.name for p in PACKAGE_DIR.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert top == TOP_LEVEL
