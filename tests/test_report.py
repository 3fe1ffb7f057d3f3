"""The batch report on real workflow results: every sample, agreeing counts, censoring
marks, curves, chimerism, print layout, a one-patient batch, and a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from immuno.cli import main
from immuno.report import build_report

from .browser import open_page


def _sheet(results: Path) -> pd.DataFrame:
    batch = next(p for p in results.iterdir() if (p / "provenance.json").is_file())
    return pd.read_csv(batch / "validation" / "samplesheet.csv", dtype=str, keep_default_na=False)


def _gated(sheet: pd.DataFrame) -> set[str]:
    """Cytometry samples that are gated (single stains and the unstained tube only serve compensation)."""
    return set(sheet.loc[(sheet.assay == "cytometry") & ~sheet.tube.isin(["single_stain", "unstained"]), "sample_id"])


def _batch(results: Path) -> Path:
    return next(p for p in results.iterdir() if (p / "provenance.json").is_file())


def test_every_cytometry_sample_has_its_gating_plot_flagged_first(demo_results: Path) -> None:
    html = (_batch(demo_results) / "report.html").read_text()
    sheet = _sheet(demo_results)
    cyto = _gated(sheet)
    figures = re.findall(r'<figure class="gating" data-sample="([^"]+)" data-status="(\w+)">\s*<figcaption>.*?</figcaption>\s*'
                         r'(<img[^>]*src="data:image/png;base64,)?', html, flags=re.S)
    assert {f[0] for f in figures} == cyto and len(figures) == len(cyto)
    assert all(f[2] for f in figures)  # every one has its embedded plot
    rank = {"fail": 0, "warning": 1, "pass": 2}
    assert [rank[f[1]] for f in figures] == sorted(rank[f[1]] for f in figures)


def test_cards_and_tables_agree_with_the_result_files(demo_results: Path) -> None:
    batch = _batch(demo_results)
    html = (batch / "report.html").read_text()
    m = pd.read_parquet(batch / "measurements.parquet")
    q = pd.read_parquet(batch / "qc" / "metrics.parquet")
    cards = dict(re.findall(r'<div class="card" data-assay="(\w+)">(.*?)</div>', html, flags=re.S))
    total_failing = total_failed = 0
    for assay in ("cytometry", "chemokine", "chimerism"):
        failing = int(re.search(r"(\d+) values failing QC", cards[assay]).group(1))
        failed = re.search(r"(\d+) of (\d+) QC checks failed", cards[assay])
        assert failing == int((~m[m.assay == assay].qc_pass).sum())
        assert int(failed.group(1)) == int(q[q.assay == assay].passed.eq(False).sum())
        assert int(failed.group(2)) == int((q.assay == assay).sum())
        total_failing += failing
        total_failed += int(failed.group(1))
    assert f"{total_failing} values failing QC" in cards["all"]
    assert f"{total_failed} of {len(q)} QC checks failed" in cards["all"]


def test_sections_show_concentrations_curves_and_chimerism(demo_results: Path) -> None:
    batch = _batch(demo_results)
    html = (batch / "report.html").read_text()
    m = pd.read_parquet(batch / "measurements.parquet")
    # every (patient, visit) has its row in the sample x assay matrix, with reasons behind a click
    patients = m[~m.control].drop_duplicates(["patient_id", "visit"])
    for r in patients.itertuples():
        assert f"<td>{r.patient_id} {r.visit}</td>" in html
    assert html.count("<details>") >= len(patients)
    # censored concentrations show the limit, never a substitute
    low = m[m.flag.str.contains("<LLOQ", regex=False)]
    for r in low.itertuples():
        assert f"&lt; {r.upper:.4g} (&lt;LLOQ)" in html
    curves = pd.read_parquet(batch / "chemokines" / "curves.parquet")
    assert "R²" in html and "excluded standards" in html
    for r in curves.itertuples():
        assert f"{r.r2:.5g}" in html
    chim = m[(m.assay == "chimerism") & (m.feature == "donor_fraction")]
    for r in chim.itertuples():
        assert f"[{r.lower:.3g}, {r.upper:.3g}]" in html
    # two panels that share a feature name are two tables, each with its own unit
    for r in m[m.assay == "cytometry"].drop_duplicates(["panel", "feature"]).itertuples():
        if ":" not in r.feature:
            assert f"{r.feature} [{r.unit}]" in html


@pytest.mark.slow
def test_report_in_chromium(demo_results: Path, tmp_path: Path) -> None:
    report = _batch(demo_results) / "report.html"
    assert report.stat().st_size < 10 * 2**20
    seen = open_page(report, tmp_path / "report.png")
    assert seen.console_errors == [] and seen.outside_requests == []
    assert seen.images >= len(_gated(_sheet(demo_results))) and seen.broken_images == []
    assert seen.clipped_when_printed == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_one_patient_batch_renders(one_patient_results: Path, tmp_path: Path) -> None:
    batch = _batch(one_patient_results)
    out = tmp_path / "one.html"
    assert main(["report", str(batch), "--out", str(out)]) == 0
    html = out.read_text()
    sheet = _sheet(one_patient_results)
    assert set(sheet.patient_id) - {""} <= {"P01", "REFCTRL"}
    for section in ("Cytometry", "Chemokine", "Chimerism", "Provenance"):
        assert f">{section}</h2>" in html
    assert html.count('<figure class="gating"') == len(_gated(sheet)) == 12  # 3 visits x 3 tubes + 3 reference
    seen = open_page(out, tmp_path / "one.png")
    assert seen.console_errors == [] and seen.broken_images == [] and seen.outside_requests == []


def test_report_of_a_folder_that_is_not_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a complete batch results folder" in capsys.readouterr().err
    with pytest.raises(Exception, match="missing"):
        build_report(tmp_path)
