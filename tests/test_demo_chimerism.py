"""The demo's chimerism part: its files parse back to what was simulated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism import (
    call_ngs_genotype,
    call_str_genotype,
    read_genemapper,
    read_marker_counts,
)
from immuno.demo.chimerism import FRACTION_RANGES, NGS_PANEL, STR_PANEL, design, simulate

PATIENTS = ["P01", "P02", "P03", "P04"]
VISITS = ["D0", "D10", "M1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    out = tmp_path_factory.mktemp("demo")
    rows, truth = simulate(out, 11, PATIENTS, VISITS, 1000)
    return out, rows, truth


def test_sheet_rows_and_truth(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, rows, truth = demo
    sheet = pd.DataFrame(rows)
    assert len(sheet) == 6 * len(PATIENTS)
    assert set(sheet["role"]) == {"recipient_reference", "donor_reference", "biopsy"}
    assert (sheet.loc[sheet["role"] == "biopsy", "visit"] == "M1").all()
    assert (sheet.loc[sheet["role"] != "biopsy", "visit"] == "D0").all()
    assert set(sheet["panel"]) == {STR_PANEL, NGS_PANEL}
    assert (sheet.loc[sheet["role"] != "recipient_reference", "donor_id"].str.startswith("MSC")).all()
    assert all((out / f).is_file() for f in sheet["file"])
    assert "P01-M1-BX-STR" in set(sheet["sample_id"]) and "P03-DON-NGS" in set(sheet["sample_id"])
    t = pd.DataFrame(truth)
    assert set(t["sample_id"]) == set(sheet.loc[sheet["role"] == "biopsy", "sample_id"])
    assert (t["unit"] == "%").all() and (t["feature"] == "donor_fraction").all()
    assert ((t["value"] == 0) == (t["flag"] == "not_detected")).all()
    # each range of the issue is represented with the default four patients
    values = t.drop_duplicates("value")["value"] / 100
    for lo, hi in FRACTION_RANGES.values():
        assert ((values >= lo) & (values <= hi)).any(), (lo, hi)


def test_str_exports_parse_back_to_simulated_genotypes(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, _ = demo
    d = design(11, PATIENTS)
    for sim in d.patients:
        peaks = read_genemapper(out / "chimerism" / f"{sim.patient}_STR_GeneMapper.txt")
        assert set(peaks["sample_name"]) == {f"{sim.patient}-{t}-STR" for t in ("REC", "DON", "M1-BX")}
        for tag, truth in (("REC", sim.str_recipient), ("DON", sim.str_donor)):
            calls = call_str_genotype(peaks[peaks["sample_name"] == f"{sim.patient}-{tag}-STR"]).set_index("marker")
            for locus, alleles in truth.items():
                assert calls.loc[locus, "alleles"] == tuple(sorted(set(alleles), key=float)), (tag, locus)
            # measured back-stutter is the simulated locus ratio (10 % noise per peak)
            measured = calls["stutter_ratio"].dropna()
            simulated = pd.Series(d.stutter)[measured.index]
            assert np.allclose(measured, simulated, rtol=0.35)


def test_str_biopsy_areas_follow_the_dose_model(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, truth = demo
    d = design(11, PATIENTS)
    for sim in d.patients:
        if sim.fraction < 0.05:
            continue
        peaks = read_genemapper(out / "chimerism" / f"{sim.patient}_STR_GeneMapper.txt")
        bx = peaks[peaks["sample_name"] == f"{sim.patient}-M1-BX-STR"]
        ratios = []
        for locus in sim.str_recipient:
            rec, don = set(sim.str_recipient[locus]), set(sim.str_donor[locus])
            if rec & don or len(rec) != 2 or len(don) != 2:
                continue
            area = bx[bx["marker"] == locus].set_index("allele")["area"]
            ratios.append(area.reindex(sorted(don)).sum() / area.reindex(sorted(rec | don)).sum())
        # no shared allele, both heterozygous: donor share of the area is f (5 % noise per peak)
        assert abs(np.mean(ratios) - sim.fraction) < 0.03


def test_ngs_tables_parse_back(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, _ = demo
    d = design(11, PATIENTS)
    for sim in d.patients:
        for tag, dose in (("REC", sim.ngs_recipient), ("DON", sim.ngs_donor)):
            counts = read_marker_counts(out / "chimerism" / f"{sim.patient}-{tag}-NGS.tsv")
            assert counts["marker"].tolist() == d.ngs_markers
            assert counts["depth"].median() == pytest.approx(1000, rel=0.15)
            calls = call_ngs_genotype(counts)
            called = calls["genotype"].notna()
            assert called.mean() >= 0.9
            assert (calls.loc[called, "genotype"].to_numpy() == dose[called.to_numpy()]).all()
        bx = read_marker_counts(out / "chimerism" / f"{sim.patient}-M1-BX-NGS.tsv")
        informative = (sim.ngs_recipient == 0) & (sim.ngs_donor > 0)
        n = bx.loc[informative, "depth"].to_numpy()
        p = sim.fraction * sim.ngs_donor[informative] / 2
        e = d.ngs_error[informative]
        expected = float((n * (p * (1 - e) + (1 - p) * e)).sum() / n.sum())
        observed = bx.loc[informative, "alt_count"].sum() / n.sum()
        # beta-binomial sd of the pooled fraction (rho = 800 roughly doubles the binomial variance)
        sd = np.sqrt(expected * (1 - expected) / n.sum() * (1 + 1000 / 801))
        assert abs(observed - expected) < 4 * sd, (sim.patient, observed, expected)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    simulate(a, 3, ["P01", "P02"], VISITS, 1000)
    simulate(b, 3, ["P01", "P02"], VISITS, 1000)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = tmp_path / "c"
    simulate(c, 4, ["P01", "P02"], VISITS, 1000)
    assert (a / files[0]).read_bytes() != (c / files[0]).read_bytes()
