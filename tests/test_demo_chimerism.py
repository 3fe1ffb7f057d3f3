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
from immuno.demo.chimerism import (
    FRACTION_RANGES,
    NGS_PANEL,
    POOLED_PATIENT,
    STR_PANEL,
    design,
    simulate,
)
from immuno.demo.chimerism_files import NEXT_DYE

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
    d = design(11, PATIENTS)
    lots = {lot for sim in d.patients for lot, _, _, _ in sim.donors()}
    # per patient: STR recipient and biopsy, NGS recipient, biopsy and one donor row per
    # lot; the STR donor reference is each lot's genotype list, named once
    expected = sum(4 + len(sim.donors()) for sim in d.patients) + len(lots)
    assert len(sheet) == expected
    assert set(sheet["role"]) == {"recipient_reference", "donor_reference", "biopsy"}
    assert (sheet.loc[sheet["role"] == "biopsy", "visit"] == "M1").all()
    assert (sheet.loc[sheet["role"] != "biopsy", "visit"] == "D0").all()
    assert set(sheet["panel"]) == {STR_PANEL, NGS_PANEL}
    assert (
        sheet.loc[sheet["role"] != "recipient_reference", "donor_id"].str.startswith("MSC")
    ).all()
    assert all((out / f).is_file() for f in sheet["file"])
    assert "P01-M1-BX-STR" in set(sheet["sample_id"]) and "P03-DON-NGS" in set(sheet["sample_id"])
    profiles = sheet[(sheet["panel"] == STR_PANEL) & (sheet["role"] == "donor_reference")]
    assert sorted(profiles["sample_name"]) == sorted(lots)
    t = pd.DataFrame(truth)
    assert set(t["sample_id"]) == set(sheet.loc[sheet["role"] == "biopsy", "sample_id"])
    assert (t["unit"] == "%").all()
    pooled = d.patients[POOLED_PATIENT]
    lot_ids = [lot for lot, _, _, _ in pooled.donors()]
    assert len(lot_ids) == 2
    for sid, g in t.groupby("sample_id"):
        if sid.startswith(pooled.patient):
            # a pooled product of two lots: one row per lot, the lot in the feature's name
            assert sorted(g["feature"]) == sorted(f"donor_fraction_{lot}" for lot in lot_ids)
        else:
            assert g["feature"].tolist() == ["donor_fraction"]
    assert ((t["value"] == 0) == (t["flag"] == "not_detected")).all()
    # each range of the issue is represented with the default four patients
    values = t.drop_duplicates("value")["value"] / 100
    for lo, hi in FRACTION_RANGES.values():
        assert ((values >= lo) & (values <= hi)).any(), (lo, hi)


def _person(peaks: pd.DataFrame, sample: str) -> pd.DataFrame:
    return peaks[peaks["sample_name"] == sample]


def test_str_exports_parse_back_to_simulated_genotypes(
    demo: tuple[Path, list[dict], list[dict]],
) -> None:
    out, _, _ = demo
    d = design(11, PATIENTS)
    layouts = set()
    for sim in d.patients:
        path = out / "chimerism" / f"{sim.patient}_STR_GeneMapper.txt"
        head = path.read_text().splitlines()[0]
        layouts.add(
            "genotypes" if "Allele.1" in head else "decimal_comma" if ";" in head else "peaks"
        )
        peaks = read_genemapper(path)
        assert set(peaks["sample_name"]) == {f"{sim.patient}-{t}-STR" for t in ("REC", "M1-BX")}
        if ";" in head:
            # sizes with decimal commas read as base pairs, not a hundred times too large
            assert peaks["size"].between(60, 400).all()
        calls = call_str_genotype(_person(peaks, f"{sim.patient}-REC-STR")).set_index("marker")
        for locus, alleles in sim.str_recipient.items():
            expected = set(alleles)
            if sim.off_ladder.get(locus) in expected:
                # the off-ladder allele is called by its size, as GeneMapper sizes it
                expected.discard(sim.off_ladder[locus])
                ol = [a for a in calls.loc[locus, "alleles"] if a.startswith("OL@")]
                assert len(ol) == 1, calls.loc[locus]
                expected.add(ol[0])
            assert set(calls.loc[locus, "alleles"]) == expected, (
                sim.patient,
                locus,
                calls.loc[locus, "note"],
            )
        # measured back-stutter is the simulated locus ratio (10 % noise per peak)
        measured = calls["stutter_ratio"].dropna()
        simulated = pd.Series(d.stutter)[measured.index]
        assert np.allclose(measured, simulated, rtol=0.35)
        # the biopsies carry pull-up from their tallest peaks into the next dye
        bx = _person(peaks, f"{sim.patient}-M1-BX-STR")
        pulled = 0
        for _, p in bx.nlargest(2, "height").iterrows():
            near = bx[(bx["dye"] == NEXT_DYE[p["dye"]]) & ((bx["size"] - p["size"]).abs() < 0.3)]
            pulled += int(
                (
                    (near["height"] >= 0.015 * p["height"])
                    & (near["height"] <= 0.065 * p["height"])
                ).any()
            )
        assert pulled >= 1, sim.patient
    assert layouts == {"peaks", "genotypes", "decimal_comma"}


def test_lot_profiles_are_genotype_lists(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, _ = demo
    d = design(11, PATIENTS)
    for sim in d.patients:
        for lot, _, genotype, _ in sim.donors():
            path = out / "chimerism" / f"{lot}_STR_profile.txt"
            text = path.read_text()
            assert "Double entry for homozygotes" in text
            listed = read_genemapper(path)
            assert listed["height"].isna().all()  # allele calls, no peaks
            calls = call_str_genotype(listed).set_index("marker")
            for locus, alleles in genotype.items():
                assert set(calls.loc[locus, "alleles"]) == set(alleles)
                if alleles[0] == alleles[1]:
                    # a homozygote entered twice is one allele
                    assert len(calls.loc[locus, "alleles"]) == 1


def test_str_biopsy_areas_follow_the_dose_model(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, truth = demo
    d = design(11, PATIENTS)
    for sim in d.patients:
        if sim.fraction < 0.05 or len(sim.donors()) > 1:
            continue
        peaks = read_genemapper(out / "chimerism" / f"{sim.patient}_STR_GeneMapper.txt")
        bx = peaks[peaks["sample_name"] == f"{sim.patient}-M1-BX-STR"]
        ratios = []
        for locus in sim.str_recipient:
            rec, don = set(sim.str_recipient[locus]), set(sim.str_donor[locus])
            if rec & don or len(rec) != 2 or len(don) != 2 or locus in sim.off_ladder:
                continue
            area = bx[bx["marker"] == locus].set_index("allele")["area"]
            ratios.append(area.reindex(sorted(don)).sum() / area.reindex(sorted(rec | don)).sum())
        # no shared allele, both heterozygous: donor share of the area is f (5 % noise per peak)
        assert abs(np.mean(ratios) - sim.fraction) < 0.03


def _ngs(out: Path, patient: str, tag: str) -> pd.DataFrame:
    path = next((out / "chimerism").glob(f"{patient}-{tag}-NGS.*"))
    return read_marker_counts(path)


def test_ngs_tables_parse_back(demo: tuple[Path, list[dict], list[dict]]) -> None:
    out, _, _ = demo
    d = design(11, PATIENTS)
    suffixes = set()
    for sim in d.patients:
        suffixes |= {
            p.name.split("-NGS")[1] for p in (out / "chimerism").glob(f"{sim.patient}-*-NGS.*")
        }
        for tag, dose in (("REC", sim.ngs_recipient), ("DON", sim.ngs_donor)):
            counts = _ngs(out, sim.patient, tag)
            assert counts["marker"].tolist() == d.ngs_markers
            assert counts["depth"].median() == pytest.approx(1000, rel=0.15)
            calls = call_ngs_genotype(counts)
            called = calls["genotype"].notna()
            assert called.mean() >= 0.9
            assert (calls.loc[called, "genotype"].to_numpy() == dose[called.to_numpy()]).all()
        bx = _ngs(out, sim.patient, "M1-BX")
        lots = sim.donors()
        informative = (sim.ngs_recipient == 0) & np.any([g > 0 for _, _, _, g in lots], axis=0)
        n = bx.loc[informative, "depth"].to_numpy()
        p = sum(f * g[informative] for _, f, _, g in lots) / 2
        e = d.ngs_error[informative]
        expected = float((n * (p * (1 - e) + (1 - p) * e)).sum() / n.sum())
        observed = bx.loc[informative, "alt_count"].sum() / n.sum()
        # beta-binomial sd of the pooled fraction (rho = 800 roughly doubles the binomial
        # variance); with errors as uneven as the demo's, the expected background varies
        # by marker as well
        sd = np.sqrt(expected * (1 - expected) / n.sum() * (1 + 1000 / 801))
        assert abs(observed - expected) < 4 * sd, (sim.patient, observed, expected)
    # one patient's NGS files are single-sample VCF.gz, read by content
    assert suffixes == {".tsv", ".vcf.gz"}


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    simulate(a, 3, ["P01", "P02"], VISITS, 1000)
    simulate(b, 3, ["P01", "P02"], VISITS, 1000)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = tmp_path / "c"
    simulate(c, 4, ["P01", "P02"], VISITS, 1000)
    assert (a / files[0]).read_bytes() != (c / files[0]).read_bytes()
