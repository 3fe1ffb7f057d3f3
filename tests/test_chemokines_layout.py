"""The chemokine room's layout: stages as subpackages, imports only downwards, no cycles,
and the flat layout's module paths still importing, with a warning, for one release."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from immuno._moved import moved_paths, split_paths

from .room_layout import (
    PACKAGE_ROOT,
    cycles,
    import_graph,
    import_old_path,
    imported_names,
    room_modules,
)

ROOM = PACKAGE_ROOT / "immuno" / "chemokines"
PACKAGE = "immuno.chemokines"
#: each stage may import its own modules and the stages before it, never one after it
LAYERS = ("io", "fit", "qc", "quantify", "pipeline")
#: every module of the flat layout that moved whole and where it went (``quantify`` became
#: the stage itself)
FORMER = {
    "bioplex": "io.bioplex",
    "bioplex_xml": "io.bioplex_xml",
    "delimited": "io.delimited",
    "intelliflex": "io.intelliflex",
    "layout": "io.layout",
    "msd": "io.msd",
    "plate": "io.plate",
    "qpcr_quantstudio": "io.quantstudio",
    "readers": "io.readers",
    "xponent": "io.xponent",
    "xponent_blocks": "io.xponent_blocks",
    "curves": "fit.curves",
    "standards": "fit.standards",
    "integrity": "qc.integrity",
    "vendor": "qc.vendor",
    "westgard": "qc.westgard",
    "qpcr": "quantify.qpcr",
    "qpcr_run": "quantify.qpcr_run",
    "sample_values": "quantify.sample_values",
    "scores": "quantify.scores",
    "outputs": "pipeline.outputs",
    "plots": "pipeline.plots",
    "process": "pipeline.batch",
}
#: the former qPCR readers module held the RDML and the CFX reader: its names and their homes
SPLIT = {
    "qpcr_readers": {
        "sniff_rdml": "io.rdml",
        "read_rdml": "io.rdml",
        "sniff_cfx": "io.cfx",
        "sniff_cfx_sheets": "io.cfx",
        "read_cfx": "io.cfx",
    }
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[:2]) == PACKAGE and parts[2] in LAYERS:
        return parts[2]
    return None


def test_the_room_is_its_stages_plus_the_interface_and_the_checks() -> None:
    top = sorted(
        p.name for p in ROOM.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    )
    assert top == sorted(["__init__.py", "checks.py", *LAYERS])


def test_each_stage_imports_only_itself_and_the_stages_before() -> None:
    modules = room_modules(ROOM)
    wrong = []
    for name, path in modules.items():
        stage = _stage(name)
        if stage is None:
            continue
        for target, line in imported_names(path):
            if not target.startswith(PACKAGE):
                continue
            other = _stage(target)
            if other is None or LAYERS.index(other) > LAYERS.index(stage):
                wrong.append(f"{path.relative_to(ROOM)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_stage_order_is_the_one_the_code_needs() -> None:
    # the order is not arbitrary: each of these imports forces one stage after another (io
    # and fit need nothing of each other; io comes first as the data does)
    graph = import_graph(room_modules(ROOM))
    used = {(_stage(m), _stage(t)) for m, targets in graph.items() for t in targets}
    for after, before in (
        ("qc", "io"),
        ("qc", "fit"),
        ("quantify", "qc"),
        ("pipeline", "quantify"),
    ):
        assert (after, before) in used, f"{after} imports nothing of {before}"


def test_no_import_cycle_not_even_through_a_deferred_import() -> None:
    found = cycles(import_graph(room_modules(ROOM), ignore=frozenset({PACKAGE})))
    assert not found, found


def test_curves_know_nothing_of_standards() -> None:
    curves = ROOM / "fit" / "curves.py"
    assert not [t for t, _ in imported_names(curves) if t.startswith(PACKAGE)]
    standards = {t for t, _ in imported_names(ROOM / "fit" / "standards.py")}
    assert f"{PACKAGE}.fit.curves.fit_curve" in standards


def test_each_stage_says_what_it_owns_and_imports_nothing_itself() -> None:
    for stage in LAYERS:
        tree = ast.parse((ROOM / stage / "__init__.py").read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree) or ""
        assert len(doc.split()) >= 40, f"{stage}/__init__.py needs a paragraph saying what it owns"
        assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], stage


def test_the_room_stays_out_of_other_rooms_the_demo_the_command_and_snakemake() -> None:
    forbidden = (
        "immuno.demo",
        "immuno.cytometry",
        "immuno.chimerism",
        "immuno.cli",
        "immuno.commands",
        "snakemake",
    )
    wrong = [
        f"{path.relative_to(ROOM)}:{line} imports {target}"
        for path in ROOM.rglob("*.py")
        for target, line in imported_names(path)
        if target.startswith(forbidden) and not _allowed_exception(path, target)
    ]
    assert not wrong, wrong


#: the one import of another room: LEGENDplex wells are FCS files, read by the project's FCS
#: reader (its module docstring says why), from this module only and from fcs.py only
FCS_EXCEPTION = ("io/legendplex.py", "immuno.cytometry.io.fcs.")


def _allowed_exception(path: Path, target: str) -> bool:
    return path.relative_to(ROOM).as_posix() == FCS_EXCEPTION[0] and target.startswith(
        FCS_EXCEPTION[1]
    )


def test_the_one_exception_is_used_as_documented() -> None:
    path = ROOM / "io" / "legendplex.py"
    targets = [t for t, _ in imported_names(path) if t.startswith("immuno.cytometry")]
    assert sorted(targets) == [
        "immuno.cytometry.io.fcs.read_fcs",
        "immuno.cytometry.io.fcs.read_fcs_header",
    ]
    assert "immuno.cytometry.io.fcs" in (ast.get_docstring(ast.parse(path.read_text())) or "")


def test_public_names_resolve_where_the_package_says() -> None:
    import immuno.chemokines as chem

    assert sorted(chem.__all__) == sorted(chem._EXPORTS)
    # every name the flat package exported before the cut is still public
    assert {
        "CURVE_DEFAULTS",
        "CurveFit",
        "CurveParams",
        "PlateData",
        "PlateIssue",
        "PlateResult",
        "QPCR_COLUMNS",
        "RunResult",
        "StandardCurve",
        "WELL_COLUMNS",
        "back_calculate",
        "check_inputs",
        "concentrations_anndata",
        "derived_scores",
        "detect_format",
        "efficiency_from_standards",
        "fit_curve",
        "fit_standard_curves",
        "fit_standards",
        "genorm_m",
        "judge_curve",
        "levey_jennings",
        "parse_cell",
        "precision_profile",
        "predict",
        "process_batch",
        "quantify_file",
        "quantify_plate",
        "quantify_run",
        "read_layout",
        "read_plate",
        "relative_expression",
        "westgard",
    } == set(chem.__all__)
    for name in chem.__all__:
        module = importlib.import_module(chem._EXPORTS[name])
        assert getattr(chem, name) is getattr(module, name), name
    with pytest.raises(AttributeError):
        chem.no_such_name  # noqa: B018


def test_importing_the_room_loads_none_of_it() -> None:
    code = (
        "import sys, immuno.chemokines; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('immuno.chemokines.') "
        "or m.split('.')[0] in ('pandas', 'numpy', 'scipy', 'matplotlib', 'anndata'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_every_moved_module_is_registered() -> None:
    registered = {old: new for old, new in moved_paths().items() if old.startswith(f"{PACKAGE}.")}
    assert registered == {f"{PACKAGE}.{old}": f"{PACKAGE}.{new}" for old, new in FORMER.items()}
    split = {old: new for old, new in split_paths().items() if old.startswith(f"{PACKAGE}.")}
    assert split == {f"{PACKAGE}.qpcr_readers": (f"{PACKAGE}.io.rdml", f"{PACKAGE}.io.cfx")}
    assert not [old for old in [*FORMER, *SPLIT] if (ROOM / f"{old}.py").exists()]


@pytest.mark.parametrize("old", sorted(FORMER))
def test_an_old_path_imports_the_new_module_with_a_warning(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = importlib.import_module(f"{PACKAGE}.{FORMER[old]}")
    moved, _ = import_old_path(
        PACKAGE, old, monkeypatch, f"{PACKAGE}.{old} has moved to {new.__name__}"
    )
    assert moved is new
    assert sys.modules[f"{PACKAGE}.{old}"] is new


@pytest.mark.parametrize("old", sorted(SPLIT))
def test_a_split_old_path_reaches_all_its_names_with_a_warning(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    former, _ = import_old_path(
        PACKAGE, old, monkeypatch, f"{PACKAGE}.{old} has been split into"
    )
    for name, home in SPLIT[old].items():
        assert getattr(former, name) is getattr(importlib.import_module(f"{PACKAGE}.{home}"), name)
    with pytest.raises(AttributeError):
        former.no_such_name  # noqa: B018


def test_names_of_the_former_quantify_module_resolve_with_a_warning() -> None:
    from immuno.chemokines.quantify import multiplex

    for name in ("QC_DEFAULTS", "PlateResult", "analyte_map", "quantify_plate"):
        with pytest.warns(
            DeprecationWarning, match=f"quantify.{name} has moved to {multiplex.__name__}"
        ):
            value = getattr(importlib.import_module(f"{PACKAGE}.quantify"), name)
        assert value is getattr(multiplex, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            importlib.import_module(f"{PACKAGE}.quantify").no_such_name  # noqa: B018
