"""Batch processing, input checks and the CLI of the chimerism room, on the demo batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from immuno.chimerism.checks import check_inputs
from immuno.chimerism.pipeline.outputs import process_batch
from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.demo import make_demo_batch

PANELS = Path(__file__).resolve().parents[1] / "panels"


@pytest.fixture(scope="module")
def demo_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_batch(
        tmp_path_factory.mktemp("b") / "chim_demo", seed=5, patients=6, assays=("chimerism",)
    )


@pytest.fixture(scope="module")
def processed(
    demo_batch: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("results") / "chimerism"
    batch = load_batch(demo_batch, panels_dir=PANELS)
    return out, process_batch(batch, out)


def test_demo_batch_has_no_input_problems(demo_batch: Path) -> None:
    batch = load_batch(demo_batch, panels_dir=PANELS)
    assert check_inputs(batch.rows("chimerism"), batch.root, batch.panels) == []


def _fractions(m: pd.DataFrame) -> pd.DataFrame:
    """The donor-fraction rows: ``donor_fraction``, or ``donor_fraction_<lot>`` per lot."""
    return m[
        m["feature"].str.startswith("donor_fraction")
        & ~m["feature"].str.startswith("donor_fraction_lod")
    ]


def test_measurements_against_truth(
    demo_batch: Path, processed: tuple[Path, dict[str, Path]]
) -> None:
    out, written = processed
    m = pd.read_parquet(written["measurements"])
    truth = pd.read_csv(demo_batch / "truth.csv")
    frac = _fractions(m).merge(truth, on=["sample_id", "feature"], suffixes=("", "_true"))
    # 12 biopsies; the pooled-product patient has one row per donor lot for each method
    assert len(frac) == len(truth) == 14
    assert (frac["unit"] == "%").all() and frac["qc_pass"].all()
    pooled = frac[frac["feature"] != "donor_fraction"]
    assert len(pooled) == 4 and pooled["sample_id"].nunique() == 2
    ngs = frac[frac["panel"] == "chimerism_ngs48"]
    assert ((ngs["lower"] <= ngs["value_true"]) & (ngs["value_true"] <= ngs["upper"])).all(), ngs
    lod = m[m["feature"].str.startswith("donor_fraction_lod")].copy()
    lod["feature"] = lod["feature"].str.replace("donor_fraction_lod", "donor_fraction", regex=False)
    ngs_lod = ngs.merge(
        lod[["sample_id", "feature", "value"]], on=["sample_id", "feature"], suffixes=("", "_lod")
    )["value_lod"].to_numpy()
    # above its LoD a biopsy must be detected; with no donor DNA it must not be
    assert (ngs.loc[ngs["value_true"].to_numpy() > ngs_lod, "flag"] == "detected").all()
    assert (ngs.loc[ngs["value_true"] == 0, "flag"] == "not_detected").all()
    strs = frac[(frac["panel"] == "chimerism_str16") & (frac["value_true"] >= 5)]
    assert len(strs) == 2 and ((strs["value"] - strs["value_true"]).abs() <= 1).all()
    assert len(lod) == 14 and (lod["value"] > 0).all() and (lod["unit"] == "%").all()
    assert set(m["patient_id"]) == {f"P{i:02d}" for i in range(1, 7)} and set(m["visit"]) == {"M1"}


def test_side_tables_anndata_and_plots(
    demo_batch: Path, processed: tuple[Path, dict[str, Path]]
) -> None:
    out, written = processed
    for name in (
        "chimerism_measurements.parquet",
        "qc_metrics.parquet",
        "qc_flags.parquet",
        "genotypes.parquet",
        "str_loci.parquet",
        "ngs_markers.parquet",
        "chimerism.h5ad",
        "chimerism_summary.tsv",
    ):
        assert (out / name).is_file(), name
    genotypes = pd.read_parquet(out / "genotypes.parquet")
    sheet = pd.read_csv(demo_batch / "samplesheet.csv")
    # every file of every sample, references included (each lot's STR profile once)
    assert genotypes["sample_id"].nunique() == sheet["sample_id"].nunique()
    # names typed in the instrument software stay in the batch folder; only sheet codes leave
    assert not {"sample_name", "sample_file"} & set(genotypes.columns)
    loci = pd.read_parquet(out / "str_loci.parquet")
    assert {"marker", "pattern", "donor_fraction", "stutter_position", "used", "outlier"} <= set(
        loci.columns
    )
    adata = ad.read_h5ad(out / "chimerism.h5ad")
    assert adata.n_obs == 12 and adata.n_vars == 16 + 48
    assert set(adata.obs["flag"]) <= {"detected", "not_detected"}
    assert "provenance" in adata.uns and "chimerism_ngs48" in adata.uns["provenance"]["panels"]
    assert len(list((out / "plots").glob("*.png"))) == 12
    metrics = pd.read_parquet(out / "qc_metrics.parquet")
    assert {"informative_markers", "lod"} <= set(metrics["check"])


def test_rerun_gives_identical_tables(
    demo_batch: Path, processed: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    out, _ = processed
    process_batch(load_batch(demo_batch, panels_dir=PANELS), tmp_path / "again", plots=False)
    for name in (
        "chimerism_measurements.parquet",
        "qc_metrics.parquet",
        "genotypes.parquet",
        "ngs_markers.parquet",
    ):
        assert pd.read_parquet(out / name).equals(pd.read_parquet(tmp_path / "again" / name)), name


def _broken_copy(demo_batch: Path, tmp_path: Path) -> Path:
    """The demo without the NGS reference of donor lot MSC01 (P01 and P02) and with
    P03's NGS biopsy table missing its ALT_HITS column."""
    broken = tmp_path / "broken"
    shutil.copytree(demo_batch, broken)
    sheet = pd.read_csv(broken / "samplesheet.csv", dtype=str, keep_default_na=False)
    lost = (
        (sheet["donor_id"] == "MSC01")
        & (sheet["role"] == "donor_reference")
        & sheet["sample_id"].str.endswith("NGS")
    )
    sheet[~lost].to_csv(broken / "samplesheet.csv", index=False)
    bad = broken / "chimerism" / "P03-M1-BX-NGS.tsv"
    bad.write_text(bad.read_text().replace("ALT_HITS", "HITS_ALT"))
    return broken


def test_bad_inputs_listed_before_processing(demo_batch: Path, tmp_path: Path) -> None:
    batch = load_batch(_broken_copy(demo_batch, tmp_path), panels_dir=PANELS)
    problems = [str(p) for p in check_inputs(batch.rows("chimerism"), batch.root, batch.panels)]
    for sid in ("P01-M1-BX-NGS", "P02-M1-BX-NGS"):
        assert any(sid in p and "donor_reference" in p and "MSC01" in p for p in problems), problems
    assert any("P03-M1-BX-NGS.tsv" in p and "ALT_HITS" in p for p in problems), problems
    assert len(problems) == 3


def test_bad_file_fails_its_own_sample_only(demo_batch: Path, tmp_path: Path) -> None:
    broken = _broken_copy(demo_batch, tmp_path)
    written = process_batch(load_batch(broken, panels_dir=PANELS), tmp_path / "out", plots=False)
    m = pd.read_parquet(written["measurements"])
    frac = _fractions(m).set_index("sample_id")
    failed = ["P01-M1-BX-NGS", "P02-M1-BX-NGS", "P03-M1-BX-NGS"]
    for sid in failed:
        assert frac.loc[sid, "flag"] == "not_estimated" and not frac.loc[sid, "qc_pass"]
        assert pd.isna(frac.loc[sid, "value"])
    others = frac.drop(index=failed)
    assert len(others) == 11 and others["qc_pass"].all() and others["value"].notna().all()
    flags = pd.read_parquet(written["flags"]).set_index("sample_id")
    assert flags.loc["P01-M1-BX-NGS", "flag"] == "missing_reference"
    assert flags.loc["P03-M1-BX-NGS", "flag"] == "unreadable_input"
    assert "ALT_HITS" in flags.loc["P03-M1-BX-NGS", "reason"]


def test_cli_estimate_and_process(
    demo_batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = demo_batch / "chimerism"
    code = main(
        [
            "chimerism",
            "estimate",
            "--recipient",
            str(folder / "P01-REC-NGS.tsv"),
            "--donor",
            str(folder / "P01-DON-NGS.tsv"),
            "--sample",
            str(folder / "P01-M1-BX-NGS.tsv"),
            "--out",
            str(tmp_path / "one"),
        ]
    )
    line = capsys.readouterr().out.strip()
    assert code == 0 and line.startswith("donor ") and "LoD" in line
    assert (tmp_path / "one" / "chimerism_result.json").is_file() and (
        tmp_path / "one" / "markers.tsv"
    ).is_file()
    code = main(
        [
            "chimerism",
            "estimate",
            "--recipient",
            str(folder / "P01_STR_GeneMapper.txt"),
            "--donor",
            str(folder / "P01_STR_GeneMapper.txt"),
            "--sample",
            str(folder / "P01_STR_GeneMapper.txt"),
            "--out",
            str(tmp_path / "two"),
        ]
    )
    assert code == 2 and "say which with --sample-name" in capsys.readouterr().err
    code = main(
        [
            "chimerism",
            "process",
            str(demo_batch),
            "--out",
            str(tmp_path / "batch"),
            "--panels",
            str(PANELS),
            "--no-plots",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "12 biopsies" in text and "P03-M1-BX-NGS" in text
