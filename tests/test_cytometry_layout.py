"""The cytometry room's layout: stages as subpackages, imports only downwards, no cycles."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOM = Path(__file__).resolve().parents[1] / "immuno" / "cytometry"
#: each stage may import its own and the stages before it, never one after it
LAYERS = ("engine", "io", "analysis", "pipeline")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOM.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``immuno.*`` module a file imports, at any depth (deferred imports too),
    except under ``if TYPE_CHECKING:``, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("immuno"):
                if child.module == "immuno.cytometry" or child.module.endswith(tuple(f".{s}" for s in LAYERS)):
                    # ``from immuno.cytometry.engine import gates``: the submodules named
                    found.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names)
                else:
                    found.append((child.module, child.lineno))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names if a.name.startswith("immuno"))
            visit(child)

    visit(tree)
    return found


def _room_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOM.rglob("*.py"))}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["immuno", "cytometry"] and parts[2] in LAYERS else None


def test_each_stage_imports_only_itself_and_the_stages_below() -> None:
    wrong = []
    for name, path in _room_modules().items():
        stage = _stage(name)
        if stage is None:
            continue
        for target, line in _imports(path):
            if not target.startswith("immuno.cytometry"):
                continue
            other = _stage(target)
            if other is None or LAYERS.index(other) > LAYERS.index(stage):
                wrong.append(f"{path.relative_to(ROOM)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_not_even_through_a_deferred_import() -> None:
    modules = _room_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, _ in _imports(path):
            # an imported name may be a function of a module: walk up to the module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "immuno.cytometry":
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            walk(start, [start])
    assert not cycles, cycles


def test_each_stage_says_what_it_owns_and_imports_nothing_itself() -> None:
    for stage in LAYERS:
        init = ROOM / stage / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree) or ""
        assert len(doc.split()) >= 40, f"{stage}/__init__.py needs a paragraph saying what it owns"
        assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], stage


def test_the_room_stays_out_of_other_rooms_the_demo_and_snakemake() -> None:
    forbidden = ("immuno.demo", "immuno.chemokines", "immuno.chimerism", "immuno.cli", "snakemake")
    wrong = [f"{p.relative_to(ROOM)}:{line} imports {t}" for p in ROOM.rglob("*.py")
             for t, line in _imports(p) if t.startswith(forbidden)]
    wrong += [f"{p.relative_to(ROOM)} imports snakemake" for p in ROOM.rglob("*.py")
              if "import snakemake" in p.read_text(encoding="utf-8")]
    assert not wrong, wrong


def test_public_names_resolve_where_the_package_says() -> None:
    import immuno.cytometry as cyto

    assert len(cyto.__all__) == len(set(cyto.__all__)) >= 80
    for name in cyto.__all__:
        module = importlib.import_module(cyto._EXPORTS[name])
        assert getattr(cyto, name) is getattr(module, name), name
    with pytest.raises(AttributeError):
        cyto.no_such_name  # noqa: B018
