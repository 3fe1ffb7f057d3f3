"""LEGENDplex plates: bead classification on the real CytoFLEX well, the demo plate against
its truth, and bad wells that fail alone with a message naming them."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import read_plate
from immuno.chemokines.io.beads import BeadMap, classify_events
from immuno.chemokines.pipeline.batch import quantify_file
from immuno.cli import main
from immuno.contract.panels import load_panel
from immuno.cytometry.io.fcs import read_fcs
from immuno.cytometry.io.fcs_write import write_fcs
from immuno.demo import legendplex as demo
from immuno.errors import UserError
from immuno.io import sha256_path, sha256_tree

from .conftest import PROJECT, REAL

WELL = REAL / "chemokines" / "legendplex" / "K2-C07-A7.fcs"
PANELS = {
    "th": PROJECT / "panels" / "legendplex_th_cytokine_13.yaml",
    "chemokine": PROJECT / "panels" / "legendplex_proinflammatory_chemokine_13.yaml",
}
#: the shared bead maps (beadplexr's) the two panels transcribe
BEAD_MAPS = {
    "th": "legendplex_human_th_cytokine_panel_13-plex.yml",
    "chemokine": "legendplex_human_proinflammatory_chemokine_panel_13-plex.yml",
}


@pytest.fixture(scope="module")
def real_well() -> Path:
    if not WELL.is_file():
        pytest.skip(f"real LEGENDplex well not available at {WELL}")
    return WELL


def _panel(kind: str = "th"):  # noqa: ANN202
    return load_panel(PANELS[kind])


def _lymphocytes(path: Path, n: int = 6000, seed: int = 3) -> Path:
    """A lymphocyte tube under the bead channels' names: one scatter cloud of cells, CD4-APC
    negative and positive, nothing like a bead ladder."""
    rng = np.random.default_rng(seed)
    fsc = rng.normal(60000, 9000, n)
    ssc = rng.normal(18000, 4000, n) + 0.1 * fsc
    mono = rng.random(n) < 0.3  # monocytes: larger, more granular
    fsc[mono] *= 1.8
    ssc[mono] *= 3.0
    apc = np.where(
        rng.random(n) < 0.45, 10 ** rng.normal(4.2, 0.25, n), 10 ** rng.normal(2.6, 0.3, n)
    )
    pe = 10 ** rng.normal(3.0, 0.5, n)
    events = np.column_stack(
        [fsc * 0.9, fsc, ssc * 0.9, ssc, pe, pe, apc, apc, rng.uniform(0, 60, n)]
    )
    write_fcs(path, events, demo.CHANNELS, demo.MARKERS)
    return path


# --- the real well -----------------------------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("kind", sorted(PANELS))
def test_every_bead_of_the_panel_is_found_in_the_real_well(real_well: Path, kind: str) -> None:
    import yaml

    panel = _panel(kind)
    fcs = read_fcs(real_well)
    found = classify_events(fcs.events, fcs.channels, BeadMap.from_panel(panel)).table
    # the panel transcribes the shared bead map: same groups, bead IDs and analytes
    bead_map = yaml.safe_load((real_well.parent / BEAD_MAPS[kind]).read_text())
    listed = [
        (g, b, a["name"])
        for g in bead_map["group_order"]
        for b, a in bead_map["analytes"][g].items()
    ]
    assert list(zip(found["group"], found["bead"], found["analyte"], strict=True)) == listed
    assert len(found) == 13
    assert (found["events"] >= 100).all(), found
    assert np.isfinite(found["reporter_median"]).all() and (found["reporter_median"] > 0).all()
    assert np.isfinite(found["reporter_cv"]).all()
    # bead IDs come in order of increasing APC within each group, as the kit numbers them
    for _, g in found.groupby("group"):
        assert g["classification_median"].is_monotonic_increasing
    # read by eye from the file: group B's faintest bead sits near 10^3.1 APC, A's near 10^3.8
    b2 = found.set_index("bead").loc["B2", "classification_median"]
    a4 = found.set_index("bead").loc["A4", "classification_median"]
    assert 10**2.95 < b2 < 10**3.3 and 10**3.7 < a4 < 10**3.95
    # the scatter groups and bead IDs hold most of the well (the rest: debris, doublets and
    # APC-negative events)
    assert 0.7 * fcs.n_events < found["events"].sum() < fcs.n_events


@pytest.mark.real
def test_classification_does_not_depend_on_the_seed(real_well: Path) -> None:
    fcs = read_fcs(real_well)
    bead_map = BeadMap.from_panel(_panel())
    first = classify_events(fcs.events, fcs.channels, bead_map, seed=0)
    other = classify_events(fcs.events, fcs.channels, bead_map, seed=987654)
    assert first.table["events"].tolist() == other.table["events"].tolist()
    assert np.array_equal(first.labels, other.labels)
    pd.testing.assert_frame_equal(first.table, other.table)


@pytest.mark.real
def test_a_plate_folder_is_recognised_by_its_content(real_well: Path, tmp_path: Path) -> None:
    plate_dir = tmp_path / "plate_07"
    plate_dir.mkdir()
    shutil.copy(real_well, plate_dir / real_well.name)
    (plate_dir / "notes.txt").write_text("acquired 2016-10-26\n")  # not a well: left aside
    plate = read_plate(plate_dir, panel=_panel())
    assert plate.format == "legendplex" and plate.kind == "multiplex"
    assert plate.plate_id == "plate_07"
    assert plate.wells["well"].unique().tolist() == ["A7"]  # from the file name K2-C07-A7
    assert len(plate.wells) == 13 and (plate.wells["problem"] == "").all()
    assert plate.wells["bead_count"].min() >= 100
    assert set(plate.units.values()) == {"pg/mL"}
    assert plate.meta["instrument"] == "CytoFLEX"
    assert len(plate.beads) == 13 and set(plate.beads["file"]) == {real_well.name}
    # a folder input is hashed as the tree of its files, so provenance covers every well
    assert sha256_path(plate_dir) == sha256_tree(plate_dir)
    before = sha256_tree(plate_dir)
    (plate_dir / ".DS_Store").write_bytes(b"x")  # hidden bookkeeping does not count
    assert sha256_tree(plate_dir) == before
    (plate_dir / "notes.txt").write_text("acquired 2016-10-27\n")
    assert sha256_tree(plate_dir) != before


# --- bad wells ---------------------------------------------------------------------------


@pytest.mark.real
def test_bad_wells_fail_alone_with_their_reason(real_well: Path, tmp_path: Path) -> None:
    plate_dir = tmp_path / "plate"
    plate_dir.mkdir()
    shutil.copy(real_well, plate_dir / "K2-C07-A7.fcs")
    _lymphocytes(plate_dir / "tube-B1.fcs")
    fcs = read_fcs(real_well)
    write_fcs(plate_dir / "short-C1.fcs", fcs.events[:60], fcs.channels, [None] * len(fcs.channels))
    other = REAL / "cytometry" / "flowkit_gate_ref" / "data1.fcs"
    if other.is_file():  # a real lymphocyte file, without the bead channels
        shutil.copy(other, plate_dir / "lymph-D1.fcs")
    alone = read_plate(_single(real_well, tmp_path), panel=_panel())
    plate = read_plate(plate_dir, panel=_panel())
    problems = plate.wells.drop_duplicates("well").set_index("well")["problem"]
    assert problems["A7"] == ""
    assert "bead group" in problems["B1"] and "bead populations found" in problems["B1"]
    assert "60 events, too few" in problems["C1"]
    if other.is_file():
        assert "not a LEGENDplex bead file: no channel FSC-A" in problems["D1"]
    issues = {i.well: str(i) for i in plate.issues}
    assert issues["B1"].startswith("well B1 (tube-B1.fcs): ")
    assert issues["C1"].startswith("well C1 (short-C1.fcs): ")
    assert all(i.blocking and i.kind == "well_unreadable" for i in plate.issues)
    bad = plate.wells[plate.wells["well"] != "A7"]
    assert bad["mfi"].isna().all() and bad["bead_count"].isna().all()
    # the good well reads exactly as it does alone
    good = plate.wells[plate.wells["well"] == "A7"].reset_index(drop=True)
    ref = alone.wells.reset_index(drop=True)
    assert good["mfi"].tolist() == ref["mfi"].tolist()
    assert good["bead_count"].tolist() == ref["bead_count"].tolist()


def _single(well: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "alone"
    folder.mkdir()
    shutil.copy(well, folder / well.name)
    return folder


@pytest.mark.real
def test_a_panel_with_more_beads_than_the_file_shows(real_well: Path) -> None:
    fcs = read_fcs(real_well)
    panel = _panel().spec
    populations = [
        *panel["beads"]["populations"],
        {"group": "A", "bead": "A11", "analyte": "IL-99"},
    ]
    extra = BeadMap.from_panel({"beads": {**panel["beads"], "populations": populations}})
    with pytest.raises(UserError) as err:
        classify_events(fcs.events, fcs.channels, extra, where="well A7 (K2-C07-A7.fcs)")
    (problem,) = err.value.problems
    assert problem.where == "well A7 (K2-C07-A7.fcs)"
    # group A shows six tight bead populations: a seventh is either not found or the broad
    # APC-negative cloud, which is refused as no bead population
    assert "group A" in problem.what
    assert "bead populations found" in problem.what or "no bead population there" in problem.what
    # two more in group A: fewer peaks than beads, said as such
    populations.append({"group": "A", "bead": "A12", "analyte": "IL-98"})
    more = BeadMap.from_panel({"beads": {**panel["beads"], "populations": populations}})
    with pytest.raises(UserError, match=r"bead group A: 7 bead populations found .* lists 8"):
        classify_events(fcs.events, fcs.channels, more, where="well A7")


def test_a_plate_needs_a_panel_with_beads(tmp_path: Path) -> None:
    folder = tmp_path / "plate"
    folder.mkdir()
    _lymphocytes(folder / "x-A1.fcs", n=2000)
    with pytest.raises(UserError, match="needs a panel with a beads: section"):
        read_plate(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no wells")
    with pytest.raises(UserError, match="a folder without FCS files"):
        read_plate(empty, panel=_panel())


def test_a_plate_of_no_readable_well_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "plate"
    folder.mkdir()
    _lymphocytes(folder / "tube-B1.fcs")
    status = main(
        [
            "chemokines",
            "quantify",
            str(folder),
            "--panel",
            str(PANELS["th"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("- ")]
    assert len(lines) == 1 and "well B1 (tube-B1.fcs)" in lines[0], err
    assert "bead populations found" in lines[0]


def test_the_real_well_alone_is_read_and_says_why_nothing_is_quantified(
    real_well: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a user's first try: one well, no layout, so no standards and every curve fails; the
    # command says so (exit 3) and still writes the wells and the empty curve plots
    folder = tmp_path / "plate"
    folder.mkdir()
    (folder / real_well.name).symlink_to(real_well)
    out = tmp_path / "o"
    status = main(
        ["chemokines", "quantify", str(folder), "--panel", str(PANELS["th"]), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert status == 3, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"{folder}: read, but nothing could be quantified: no analyte has an accepted standard curve"
    )
    wells = pd.read_parquet(out / "wells.parquet")
    assert len(wells) == 13 and (wells["net_mfi"] > 0).all() and (wells["bead_count"] >= 100).all()
    assert len(list((out / "plots").glob("*.png"))) == 13


# --- the demo plate against its truth ----------------------------------------------------


@pytest.fixture(scope="module")
def demo_plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    out = tmp_path_factory.mktemp("legendplex")
    sheet, truth = demo.simulate(out, 11, ["P01", "P02"], ["D0", "D10", "M1"])
    return out, sheet, truth


def test_demo_plate_is_deterministic_and_laid_out(
    demo_plate: tuple[Path, list[dict], list[dict]], tmp_path: Path
) -> None:
    out, sheet, truth = demo_plate
    again, truth2 = demo.simulate(tmp_path, 11, ["P01", "P02"], ["D0", "D10", "M1"])
    assert again == sheet and truth2 == truth
    folder = out / sheet[0]["file"]
    assert sha256_tree(folder) == sha256_tree(tmp_path / sheet[0]["file"])
    # 8 standard levels and 2 blanks in duplicate-or-pair, 6 samples in duplicate
    assert len(list(folder.glob("*.fcs"))) == 16 + 2 + 12
    layout = pd.read_csv(out / sheet[0]["layout"])
    std = layout[layout["role"] == "standard"]
    assert sorted(std["expected_conc"].unique()) == [10000.0 / 4.0**k for k in range(7, -1, -1)]
    assert {r["panel"] for r in truth} == {demo.PANEL} and len(truth) == 6 * 13


def test_demo_plate_quantifies_to_its_truth(
    demo_plate: tuple[Path, list[dict], list[dict]],
) -> None:
    out, sheet, truth = demo_plate
    plate, result = quantify_file(
        out / sheet[0]["file"], _panel("chemokine"), out / sheet[0]["layout"]
    )
    assert not plate.issues and (plate.wells["problem"] == "").all()
    assert (result.curves["status"] == "ok").all(), result.curves[["feature", "status"]]
    got = result.samples.merge(
        pd.DataFrame(truth), left_on=["sample_name", "feature"], right_on=["sample_id", "feature"],
        suffixes=("", "_true"),
    )  # fmt: skip
    assert len(got) == len(truth)
    # censoring as the standard range implies
    assert got["flag"].tolist() == got["flag_true"].tolist()
    assert {"<LLOQ", ">ULOQ"} <= set(got["flag"])
    inside = got[got["flag_true"] == ""]
    rel = (inside["value"] - inside["value_true"]).abs() / inside["value_true"]
    assert rel.median() < 0.05, rel.describe()
    censored = got[got["flag"] != ""]
    assert censored["value"].isna().all()  # never replaced by a number
    assert censored["extrapolated"].map(math.isfinite).any()


# --- a LEGENDplex plate in a batch -------------------------------------------------------


def _batch(tmp_path: Path) -> Path:
    from immuno.contract.batch import write_sheet

    folder = tmp_path / "B22"
    sheet, _truth = demo.simulate(folder, 5, ["P01"], ["D0", "D10", "M1"])
    write_sheet(sheet, folder / "samplesheet.csv")
    return folder


def test_a_batch_with_a_legendplex_plate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from immuno.chemokines import process_batch
    from immuno.contract.validate import validate_batch
    from immuno.run.provenance import hash_files, input_files

    folder = _batch(tmp_path)
    plate_dir = folder / "chemokine" / demo.PLATE_ID
    batch = validate_batch(folder)  # a folder is a chemokine row's file
    hashes = hash_files(batch.root, input_files(batch))
    rel = f"chemokine/{demo.PLATE_ID}"
    assert hashes[rel]["sha256"] == sha256_tree(plate_dir)
    assert hashes[rel]["bytes"] == sum(p.stat().st_size for p in plate_dir.iterdir())
    # validation reads each well's header: a file without the bead channels is named
    write_fcs(plate_dir / "tube-H12.fcs", np.ones((500, 2)), ["FSC-H", "SSC-H"], [None, None])
    assert main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("- ")]
    assert "well H12 (tube-H12.fcs): not a LEGENDplex bead file: no channel FSC-A" in line
    # a cell tube under the bead channels passes the header check and fails alone when run
    (plate_dir / "tube-H12.fcs").unlink()
    _lymphocytes(plate_dir / "tube-H12.fcs")
    batch = validate_batch(folder)
    table = process_batch(batch, tmp_path / "out", plots=False)
    flags = pd.read_parquet(tmp_path / "out" / "qc_flags.parquet")
    bad = flags[flags["flag"] == "plate_well_unreadable"]
    assert len(bad) == 1 and "well H12 (tube-H12.fcs): bead group" in bad["reason"].iloc[0]
    assert table["sample_id"].nunique() == 3 and table["value"].notna().sum() > 30
    assert set(table["panel"]) == {demo.PANEL} and set(table["unit"]) == {"pg/mL"}
    beads = pd.read_parquet(tmp_path / "out" / "beads.parquet")
    assert len(beads) == 13 * 24 and beads["events"].min() >= 100


def test_only_a_chemokine_row_may_name_a_folder(tmp_path: Path) -> None:
    from immuno.contract.batch import load_batch

    folder = _batch(tmp_path)
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "assay"] = "chimerism"
    sheet.to_csv(folder / "samplesheet.csv", index=False)
    with pytest.raises(UserError) as err:
        load_batch(folder)
    text = str(err.value)
    assert "row 2, column file" in text and "is a folder; expected a file" in text
