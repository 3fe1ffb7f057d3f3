"""The chimerism room's layout: methods as subpackages on a common base, the pipeline on top,
no cycles, and the flat layout's module paths still importing, with a warning, for one
release (a module split among several gives all of its names)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings

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

ROOM = PACKAGE_ROOT / "immuno" / "chimerism"
PACKAGE = "immuno.chimerism"
METHODS = ("str", "ngs", "dpcr", "qpcr", "fish")
#: the level of each subpackage: a module may import its own subpackage and lower levels;
#: the methods share one level and never import each other
LEVEL = {"common": 0, **dict.fromkeys(METHODS, 1), "pipeline": 2}
#: modules of the flat layout that moved whole, and where they went
FORMER = {
    "censored": "common.intervals",
    "confounders": "common.confounders",
    "result": "common.result",
    "tables": "common.tables",
    "genemapper": "str.genemapper",
    "str_loci": "str.loci",
    "str_mixture": "str.mixture",
    "str_peaks": "str.peaks",
    "calibration": "ngs.calibration",
    "counts": "ngs.counts",
    "detection": "ngs.detection",
    "genotype_free": "ngs.genotype_free",
    "likelihood": "ngs.likelihood",
    "ngs_references": "ngs.references",
    "inputs": "pipeline.inputs",
    "outputs": "pipeline.outputs",
    "plots": "pipeline.plots",
    "process": "pipeline.process",
}
#: modules of the flat layout split among several: the names each defined, and their homes
SPLIT = {
    "fragments": {
        "OUTLIER_MAD": "str.combine",
        "MAD_FLOOR": "str.combine",
        "MAD_RELATIVE_FLOOR": "str.combine",
        "WEAK_LOD": "str.combine",
        "estimate_str": "str.fragments",
        "LOCUS_COLUMNS": "str.loci",
        "locus_table": "str.loci",
    },
    "ngs_mixture": {
        "estimate_counts_donors": "ngs.mixture",
        "MixtureLikelihood": "ngs.mixture_likelihood",
        "maximise": "ngs.mixture_likelihood",
    },
    "genotypes": {
        "repeat_value": "common.genotypes",
        "off_ladder_label": "common.genotypes",
        "str_pattern": "common.genotypes",
        "informative_markers": "common.genotypes",
        "ANALYTICAL_THRESHOLD": "str.genotypes",
        "SATURATION": "str.genotypes",
        "STUTTER_FILTER": "str.genotypes",
        "DEFAULT_STUTTER": "str.genotypes",
        "stutter_position": "str.genotypes",
        "call_str_genotype": "str.genotypes",
        "MIN_DEPTH": "ngs.genotypes",
        "HOM_VAF": "ngs.genotypes",
        "HET_RANGE": "ngs.genotypes",
        "call_ngs_genotype": "ngs.genotypes",
    },
    "pcr": {
        "Z975": "dpcr.droplets",
        "MIN_POSITIVE_DROPLETS": "dpcr.droplets",
        "poisson_copies": "dpcr.droplets",
        "estimate_ddpcr": "dpcr.droplets",
        "QPCR_LOD": "qpcr.ct",
        "MAX_CT": "qpcr.ct",
        "estimate_qpcr": "qpcr.ct",
        "FISH_MIN_NUCLEI": "fish.nuclei",
        "estimate_fish": "fish.nuclei",
        "clopper_pearson": "common.intervals",
    },
    "readers": {
        "COUNT_COLUMNS": "ngs.exports",
        "is_vcf": "ngs.exports",
        "read_marker_counts": "ngs.exports",
        "read_vcf": "ngs.exports",
        "QPCR_COLUMNS": "qpcr.ct",
        "read_qpcr_ct": "qpcr.ct",
        "FISH_COLUMNS": "fish.nuclei",
        "read_fish": "fish.nuclei",
        # re-exported by the former module
        "DDPCR_COLUMNS": "dpcr.exports",
        "read_ddpcr": "dpcr.exports",
        "PEAK_COLUMNS": "str.genemapper",
        "allele_label": "str.genemapper",
        "read_genemapper": "str.genemapper",
        "is_allele_matrix": "ngs.genotype_free",
        "read_allele_matrix": "ngs.genotype_free",
    },
    "single": {
        "REQUIRED": "pipeline.single",
        "Exports": "pipeline.single",
        "str_settings": "pipeline.single",
        "estimate_exports": "pipeline.single",
        "READERS": "pipeline.readers",
        "guess_method": "pipeline.readers",
        "read_one": "pipeline.readers",
        "VENDOR_TOLERANCE": "dpcr.droplets",
        "ddpcr_wells": "dpcr.droplets",
        "vendor_check": "dpcr.droplets",
    },
}
#: the former digital PCR exports module: its path is now the method package, which
#: forwards the module's names
FORMER_DPCR = ("DDPCR_COLUMNS", "PARTITION_NL", "QIACUITY_PARTITIONS", "read_ddpcr")


def _part(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[:2]) == PACKAGE and parts[2] in LEVEL:
        return parts[2]
    return None


def test_the_room_is_its_methods_on_common_with_the_pipeline_and_the_checks() -> None:
    top = sorted(
        p.name for p in ROOM.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    )
    assert top == sorted(["__init__.py", "checks.py", *LEVEL])


def test_common_below_the_methods_below_the_pipeline_and_methods_apart() -> None:
    wrong = []
    for name, path in room_modules(ROOM).items():
        part = _part(name)
        if part is None:
            continue
        for target, line in imported_names(path):
            if not target.startswith(f"{PACKAGE}."):
                continue
            other = _part(target)
            allowed = other is not None and (
                other == part or LEVEL[other] < LEVEL[part] or part == "pipeline"
            )
            if not allowed:
                wrong.append(f"{path.relative_to(ROOM)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_order_is_the_one_the_code_needs() -> None:
    # every method stands on common, and the pipeline brings every method together
    graph = import_graph(room_modules(ROOM))
    used = {(_part(m), _part(t)) for m, targets in graph.items() for t in targets}
    for method in METHODS:
        assert (method, "common") in used, f"{method} imports nothing of common"
        assert ("pipeline", method) in used, f"the pipeline imports nothing of {method}"


def test_no_import_cycle_not_even_through_a_deferred_import() -> None:
    found = cycles(import_graph(room_modules(ROOM), ignore=frozenset({PACKAGE})))
    assert not found, found


def test_the_str_estimate_and_the_mixture_fit_share_the_locus_table() -> None:
    # the estimate and the mixture fit imported each other before (one import deferred);
    # the one-donor combination and the mixture now both read the table from the locus model
    combine = {t for t, _ in imported_names(ROOM / "str" / "combine.py")}
    mixture = {t for t, _ in imported_names(ROOM / "str" / "mixture.py")}
    assert f"{PACKAGE}.str.loci.locus_table" in combine & mixture
    assert not [
        t for t in mixture if t.startswith((f"{PACKAGE}.str.fragments", f"{PACKAGE}.str.combine"))
    ]


def _deferred_import_groups(tree: ast.Module) -> list[ast.stmt]:
    """The first import of each run of imports inside a function."""
    heads = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in (inner for f in functions for inner in ast.walk(f)):
        for field in ("body", "orelse", "finalbody", "handlers"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            previous: ast.AST | None = None
            for stmt in stmts:
                is_import = isinstance(stmt, ast.Import | ast.ImportFrom)
                if is_import and not isinstance(previous, ast.Import | ast.ImportFrom):
                    heads.append(stmt)
                previous = stmt
    return heads


def test_every_deferred_import_of_the_room_gives_its_reason() -> None:
    # a reason on the import line itself or on the line above the group it opens
    missing = []
    for path in ROOM.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for head in _deferred_import_groups(tree):
            here, above = lines[head.lineno - 1], lines[head.lineno - 2].strip()
            if "#" not in here and not above.startswith("#"):
                missing.append(f"{path.relative_to(ROOM)}:{head.lineno}")
    assert not missing, missing


def test_the_room_stays_out_of_other_rooms_the_demo_the_command_and_snakemake() -> None:
    forbidden = (
        "immuno.demo",
        "immuno.cytometry",
        "immuno.chemokines",
        "immuno.cli",
        "immuno.commands",
        "snakemake",
    )
    wrong = [
        f"{path.relative_to(ROOM)}:{line} imports {target}"
        for path in ROOM.rglob("*.py")
        for target, line in imported_names(path)
        if target.startswith(forbidden)
    ]
    assert not wrong, wrong


def test_public_names_resolve_where_the_package_says() -> None:
    import immuno.chimerism as chim

    assert sorted(chim.__all__) == sorted(chim._EXPORTS)
    # every name the flat package exported before the cut, and no other
    assert {
        "ChimerismResult",
        "Exports",
        "Flag",
        "apply_input_limit",
        "background_error",
        "call_ngs_genotype",
        "call_str_genotype",
        "check_inputs",
        "estimate_counts",
        "estimate_counts_donors",
        "estimate_ddpcr",
        "estimate_exports",
        "estimate_fish",
        "estimate_genotype_free",
        "estimate_qpcr",
        "estimate_str",
        "genome_equivalents",
        "informative_markers",
        "poisson_copies",
        "process_batch",
        "read_ddpcr",
        "read_fish",
        "read_genemapper",
        "read_marker_counts",
        "read_qpcr_ct",
        "read_vcf",
        "reference_pair",
        "to_anndata",
    } == set(chim.__all__)
    for name in chim.__all__:
        module = importlib.import_module(chim._EXPORTS[name])
        assert getattr(chim, name) is getattr(module, name), name
    with pytest.raises(AttributeError):
        chim.no_such_name  # noqa: B018


def test_the_three_rooms_share_one_lazy_interface() -> None:
    import immuno.chemokines
    import immuno.chimerism
    import immuno.cytometry

    for room in (immuno.chemokines, immuno.chimerism, immuno.cytometry):
        assert room.__getattr__.__module__ == "immuno._lazy", room.__name__
        assert set(room.__all__) <= set(dir(room))


def test_importing_the_room_loads_none_of_it() -> None:
    code = (
        "import sys, immuno.chimerism; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('immuno.chimerism.') "
        "or m.split('.')[0] in ('pandas', 'numpy', 'scipy', 'matplotlib', 'anndata'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_every_module_of_the_flat_layout_is_accounted_for() -> None:
    moved = {old: new for old, new in moved_paths().items() if old.startswith(f"{PACKAGE}.")}
    assert moved == {f"{PACKAGE}.{old}": f"{PACKAGE}.{new}" for old, new in FORMER.items()}
    split = {old for old in split_paths() if old.startswith(f"{PACKAGE}.")}
    assert split == {f"{PACKAGE}.{old}" for old in SPLIT}
    # the 26 modules beside __init__.py: moved whole, split, dpcr (now its package) or checks
    assert len({*FORMER, *SPLIT, "dpcr", "checks"}) == 26
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
    homes = sorted({f"{PACKAGE}.{h}" for h in SPLIT[old].values()})
    former, caught = import_old_path(
        PACKAGE, old, monkeypatch, f"{PACKAGE}.{old} has been split into"
    )
    assert all(h in str(caught[0].message) for h in homes)
    for name, home in SPLIT[old].items():
        new = importlib.import_module(f"{PACKAGE}.{home}")
        assert getattr(former, name) is getattr(new, name), name
    assert set(SPLIT[old]) <= set(dir(former))
    with pytest.raises(AttributeError):
        former.no_such_name  # noqa: B018


def test_from_a_split_old_path_import_works_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    import immuno.chimerism as chim

    monkeypatch.setattr(chim, "pcr", getattr(chim, "pcr", None), raising=False)
    monkeypatch.delitem(sys.modules, f"{PACKAGE}.pcr", raising=False)
    with pytest.warns(DeprecationWarning, match="pcr has been split"):
        from immuno.chimerism.pcr import estimate_ddpcr, estimate_fish, estimate_qpcr
    from immuno.chimerism.dpcr.droplets import estimate_ddpcr as ddpcr
    from immuno.chimerism.fish.nuclei import estimate_fish as fish
    from immuno.chimerism.qpcr.ct import estimate_qpcr as qpcr

    assert (estimate_ddpcr, estimate_fish, estimate_qpcr) == (ddpcr, fish, qpcr)
    # the numbers through the old path are the new module's: 3 of 1000 nuclei
    assert estimate_fish(3, 1000).fraction == pytest.approx(0.003)


def test_names_of_the_former_dpcr_module_resolve_with_a_warning() -> None:
    from immuno.chimerism.dpcr import exports

    for name in FORMER_DPCR:
        with pytest.warns(DeprecationWarning, match=f"dpcr.{name} has moved to {exports.__name__}"):
            value = getattr(importlib.import_module(f"{PACKAGE}.dpcr"), name)
        assert value is getattr(exports, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            importlib.import_module(f"{PACKAGE}.dpcr").no_such_name  # noqa: B018
