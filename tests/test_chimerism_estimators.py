"""Chimerism estimators against known truth: dose-model peaks, the demo, real files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism import (
    background_error,
    estimate_counts,
    estimate_str,
    read_genemapper,
    read_marker_counts,
    read_vcf,
)
from immuno.chimerism.dpcr.droplets import estimate_ddpcr
from immuno.chimerism.fish.nuclei import estimate_fish
from immuno.chimerism.ngs.mixture import estimate_counts_donors
from immuno.chimerism.qpcr.ct import estimate_qpcr
from immuno.demo.chimerism import design, simulate, simulate_marker_counts

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "chimerism"
PATIENTS = [f"P{i:02d}" for i in range(1, 10)]


def _peaks(locus_areas: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"marker": m, "allele": a, "height": area / 9, "area": area}
        for m, alleles in locus_areas.items()
        for a, area in alleles.items()
    ]
    return pd.DataFrame(rows)


def _mixture(
    rec: dict[str, tuple[str, ...]],
    don: dict[str, tuple[str, ...]],
    f: float,
    per_copy: float = 18000.0,
    stutter: float = 0.0,
) -> pd.DataFrame:
    """Peaks of the dose model E[A_x] = S((1-f) c_R(x) + f c_D(x)), plus back-stutter."""
    out: dict[str, dict[str, float]] = {}
    for locus in rec:
        areas: dict[str, float] = {}
        for person, weight in ((rec[locus], 1 - f), (don[locus], f)):
            for a in person:
                areas[a] = areas.get(a, 0.0) + per_copy * weight
        for a, area in list(areas.items()):
            below = str(int(a) - 1)
            if stutter and area > 0:
                areas[below] = areas.get(below, 0.0) + stutter * area
        out[locus] = {a: v for a, v in areas.items() if v / 9 >= 50}
    return _peaks(out)


PATTERNS = {  # locus: (recipient, donor)
    "L_no_shared": (("10", "12"), ("14", "15")),
    "L_het_het": (("10", "12"), ("10", "15")),
    "L_rec_hom": (("11", "11"), ("11", "15")),
    "L_don_hom": (("10", "12"), ("10", "10")),
    "L_same": (("9", "13"), ("9", "13")),
}


@pytest.mark.parametrize("f", [0.05, 0.2, 0.6])
def test_str_pattern_formulas_recover_dose_model(f: float) -> None:
    rec = {k: v[0] for k, v in PATTERNS.items()}
    don = {k: v[1] for k, v in PATTERNS.items()}
    # every peak throws 7 % back-stutter, which the references show and the estimator removes
    result = estimate_str(*(_mixture(rec, don, x, stutter=0.07) for x in (f, 0.0, 1.0)))
    loci = result.markers.set_index("marker")
    informative = loci[loci["status"] != "not_informative"]
    assert informative["stutter_ratio"].tolist() == pytest.approx([0.07] * 4)
    assert loci.loc["L_no_shared", "pattern"] == "no_shared"
    assert loci.loc["L_rec_hom", "pattern"] == "recipient_hom"
    assert loci.loc["L_don_hom", "pattern"] == "donor_hom"
    # identical genotypes are not informative: in the table with their status and reason
    assert loci.loc["L_same", "status"] == "not_informative" and not loci.loc["L_same", "used"]
    assert "share the same alleles" in loci.loc["L_same", "reason"]
    for locus in ("L_no_shared", "L_het_het", "L_rec_hom", "L_don_hom"):
        assert loci.loc[locus, "donor_fraction"] == pytest.approx(f, abs=1e-9), locus
    assert result.fraction == pytest.approx(f, abs=1e-9)
    # the minor person's dose-only pattern is useless at low levels and left out while
    # clean loci exist: the donor-homozygous one below 50 %, the recipient-homozygous above
    dose_only = "L_don_hom" if f < 0.5 else "L_rec_hom"
    assert not loci.loc[dose_only, "used"] and "only shifts a dose" in loci.loc[dose_only, "reason"]
    assert loci.loc["L_no_shared", "status"] == "used"
    assert result.detected


def test_str_stutter_position_is_corrected_and_set_aside() -> None:
    rec = {"L1": ("12", "14"), "L2": ("10", "11"), "L3": ("8", "8"), "L4": ("20", "22")}
    don = {"L1": ("13", "14"), "L2": ("12", "13"), "L3": ("8", "10"), "L4": ("24", "25")}
    f = 0.08
    result = estimate_str(
        _mixture(rec, don, f, stutter=0.07),
        _mixture(rec, don, 0.0, stutter=0.07),
        _mixture(rec, don, 1.0, stutter=0.07),
    )
    loci = result.markers.set_index("marker")
    # donor 13 sits in the stutter of recipient 14: corrected with the recipient's own 7 %
    assert loci.loc["L1", "stutter_position"]
    assert loci.loc["L1", "stutter_ratio"] == pytest.approx(0.07, rel=1e-6)
    assert loci.loc["L1", "donor_fraction"] == pytest.approx(f, abs=0.002)
    assert not loci.loc["L1", "used"]
    assert result.fraction == pytest.approx(f, abs=0.002)


def test_str_identical_donor_is_flagged() -> None:
    rec = {"L1": ("12", "14"), "L2": ("10", "11")}
    result = estimate_str(_mixture(rec, rec, 0.0), _mixture(rec, rec, 0.0), _mixture(rec, rec, 0.0))
    assert result.failed and not result.estimable
    assert [f.flag for f in result.flags] == ["donor_identical_to_recipient"]
    assert "not estimable" in result.summary()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("demo")
    _, truth = simulate(out, 7, PATIENTS, ["D0", "D10", "M1"], 1000)
    return out, pd.DataFrame(truth)


def test_demo_str_within_one_point_above_five_percent(demo: tuple[Path, pd.DataFrame]) -> None:
    out, truth = demo
    d = design(7, PATIENTS)
    checked = 0
    for sim in d.patients:
        p = sim.patient
        peaks = read_genemapper(out / "chimerism" / f"{p}_STR_GeneMapper.txt")
        one = {tag: peaks[peaks["sample_name"] == f"{p}-{tag}-STR"] for tag in ("REC", "M1-BX")}
        # each lot's STR reference is its genotype list (homozygotes entered twice)
        lots = {
            lot: read_genemapper(out / "chimerism" / f"{lot}_STR_profile.txt")
            for lot, _, _, _ in sim.donors()
        }
        rows = truth[truth["sample_id"] == f"{p}-M1-BX-STR"].set_index("feature")["value"]
        if len(lots) > 1:
            result = estimate_str(one["M1-BX"], one["REC"], donors=lots)
            parts = [(c, float(rows[f"donor_fraction_{c.donor_id}"])) for c in result.components]
        else:
            result = estimate_str(one["M1-BX"], one["REC"], next(iter(lots.values())))
            parts = [(result, float(rows["donor_fraction"]))]
        assert not result.failed, (p, result.summary())
        for part, true in parts:
            if true >= 5:
                assert abs(100 * part.fraction - true) <= 1.0, (p, result.summary(), true)
                assert part.detected
                checked += 1
            elif true == 0:
                assert not part.detected and part.upper >= part.lod
    assert checked >= 3


def test_demo_counts_intervals_cover_truth(demo: tuple[Path, pd.DataFrame]) -> None:
    out, truth = demo
    d = design(7, PATIENTS)

    def counts(p: str, tag: str) -> pd.DataFrame:
        # one patient's NGS files are .vcf.gz: read by content like the count tables
        return read_marker_counts(next((out / "chimerism").glob(f"{p}-{tag}-NGS.*")))

    for sim in d.patients:
        p = sim.patient
        rows = truth[truth["sample_id"] == f"{p}-M1-BX-NGS"].set_index("feature")
        if len(sim.donors()) > 1:
            result = estimate_counts_donors(
                counts(p, "M1-BX"),
                counts(p, "REC"),
                {
                    lot: counts(p, "DON" if i == 0 else f"DON{i + 1}")
                    for i, (lot, _, _, _) in enumerate(sim.donors())
                },
            )
            parts = [(c, rows.loc[f"donor_fraction_{c.donor_id}"]) for c in result.components]
        else:
            result = estimate_counts(counts(p, "M1-BX"), counts(p, "REC"), counts(p, "DON"))
            parts = [(result, rows.loc["donor_fraction"])]
        assert not result.failed, (p, result.summary())
        for part, row in parts:
            assert 100 * part.lower <= row["value"] <= 100 * part.upper, (
                p,
                result.summary(),
                row["value"],
            )
            if row["value"] == 0 or row["value"] > 100 * part.lod:
                assert part.flag == row["flag"], (p, result.summary())


@pytest.mark.real
def test_allomix_ten_percent_admixture() -> None:
    folder = REAL / "allomix_synthetic"
    if not folder.is_dir():
        pytest.skip("../shared/data/real/chimerism not present")
    result = estimate_counts(
        read_vcf(folder / "host_90_donor_10.vcf"),
        read_vcf(folder / "host.vcf"),
        read_vcf(folder / "donor.vcf"),
    )
    assert abs(result.fraction - 0.10) <= 0.01, result.summary()
    assert result.lower <= 0.10 <= result.upper
    assert result.detected and not result.failed
    assert result.n_informative >= 20


def _pair(rng: np.random.Generator, m: int = 40) -> tuple[np.ndarray, ...]:
    af = rng.uniform(0.2, 0.8, m)
    g_r = (rng.random((2, m)) < af).sum(0).astype(float)
    g_d = (rng.random((2, m)) < af).sum(0).astype(float)
    depth = 1000 * np.exp(0.2 * rng.standard_normal(m))
    error = 1e-3 * np.exp(0.3 * rng.standard_normal(m))
    return g_r, g_d, depth, error


def _table(n: np.ndarray, k: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"marker": [f"m{i}" for i in range(len(n))], "depth": n, "alt_count": k})


def test_counts_bad_inputs_are_flagged_not_numbers() -> None:
    rng = np.random.default_rng(5)
    g_r, g_d, depth, error = _pair(rng)
    rec = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    bx = _table(*simulate_marker_counts(rng, g_r, g_d, 0.01, depth, error))
    same = estimate_counts(bx, rec, rec)
    assert same.failed and same.flag == "not_estimated" and math.isnan(same.fraction)
    assert same.flags[0].flag == "donor_identical_to_recipient"
    zero = estimate_counts(bx.assign(depth=0, alt_count=0), rec, don)
    assert zero.failed and zero.flags[0].flag == "zero_depth"
    # keep only two informative markers: below the minimum of three
    few_markers = np.flatnonzero(g_r != g_d)[:2].tolist() + np.flatnonzero(g_r == g_d).tolist()
    keep = [f"m{i}" for i in few_markers]
    few = estimate_counts(
        bx[bx["marker"].isin(keep)], rec[rec["marker"].isin(keep)], don[don["marker"].isin(keep)]
    )
    assert few.failed and few.flags[0].flag == "too_few_informative_markers"
    assert few.measurement_rows()[0]["qc_pass"] is False


def test_counts_third_contributor_is_flagged() -> None:
    rng = np.random.default_rng(9)
    g_r, g_d, depth, error = _pair(rng, 48)
    af = np.full(48, 0.5)
    g_x = (rng.random((2, 48)) < af).sum(0).astype(float)
    rec = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    # 3 % of someone else's DNA, no donor DNA at all
    swapped = _table(*simulate_marker_counts(rng, g_r, g_x, 0.03, depth, error))
    result = estimate_counts(swapped, rec, don)
    assert "third_contributor" in [f.flag for f in result.flags], result.summary()
    assert result.failed
    honest = estimate_counts(
        _table(*simulate_marker_counts(rng, g_r, g_d, 0.03, depth, error)), rec, don
    )
    assert honest.detected and not honest.failed, honest.summary()


def test_summary_line_reads_like_a_result() -> None:
    rng = np.random.default_rng(1)
    g_r, g_d, depth, error = _pair(rng)
    rec = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    found = estimate_counts(
        _table(*simulate_marker_counts(rng, g_r, g_d, 0.02, depth, error)), rec, don
    )
    assert found.summary().startswith("donor ") and ", detected; LoD " in found.summary()
    empty = estimate_counts(
        _table(*simulate_marker_counts(rng, g_r, g_d, 0.0, depth, error)), rec, don
    )
    assert not empty.detected
    assert empty.summary().startswith("donor not detected (< LoD ")
    rows = empty.measurement_rows()
    assert rows[0]["flag"] == "not_detected" and rows[0]["upper"] > 0
    assert rows[1]["feature"] == "donor_fraction_lod" and rows[1]["value"] == pytest.approx(
        100 * empty.lod
    )


@pytest.mark.real
def test_ddpcr_poisson_correction_pedini_table() -> None:
    path = REAL / "ddpcr" / "pedini2021_table3.tsv"
    if not path.is_file():
        pytest.skip("../shared/data/real/chimerism not present")
    table = pd.read_csv(path, sep="\t", comment="#")
    for _, r in table.iterrows():
        n = r["total_droplets"]
        lam_y = -math.log(1 - r["y_pos"] / n)
        lam_ref = -math.log(1 - r["rpp30_pos"] / n)
        expected = lam_y / (lam_ref / 2)  # one Y copy per male genome, two RPP30 copies
        result = estimate_ddpcr(
            r["y_pos"], n, r["rpp30_pos"], n, target_copies=1, reference_copies=2
        )
        assert result.fraction == pytest.approx(expected, rel=1e-12)
        assert result.lower <= result.fraction <= result.upper
        raw = 100 * result.details["raw_fraction"]
        if str(r["reported_pct"]).isdigit():
            # the paper's % is the raw droplet ratio, which we reproduce to its rounding
            assert round(raw) == int(r["reported_pct"])
    control = table.iloc[0]
    corrected = estimate_ddpcr(
        control["y_pos"], control["total_droplets"], control["rpp30_pos"], control["total_droplets"]
    )
    # the published 100 % control read 108 % raw; Poisson-corrected it is 86 %
    assert 100 * corrected.details["raw_fraction"] == pytest.approx(108.0, abs=0.1)
    assert 100 * corrected.fraction == pytest.approx(86.3, abs=0.1)
    one_droplet = table[(table["sample"] == "LabTurbo24") & (table["expected_pct"] == 1)].iloc[0]
    low = estimate_ddpcr(
        one_droplet["y_pos"],
        one_droplet["total_droplets"],
        one_droplet["rpp30_pos"],
        one_droplet["total_droplets"],
    )
    assert not low.detected  # 1 droplet: the paper's "<DL"


def test_ddpcr_blank_wells_set_the_limit() -> None:
    # 5 false-positive droplets per 20,000 in recipient-only wells
    bx = estimate_ddpcr(6, 20000, 8000, 20000, blank_positive=5, blank_total=20000)
    assert not bx.detected and bx.lob > 0
    bx = estimate_ddpcr(30, 20000, 8000, 20000, blank_positive=5, blank_total=20000)
    assert bx.detected and bx.fraction > bx.lod


def test_qpcr_delta_delta_ct() -> None:
    # marker 10 cycles later than in the calibrator relative to the reference gene: 2^-10
    result = estimate_qpcr(
        [30.0, 30.2, 29.8], [22.0, 22.1, 21.9], [20.0, 20.1, 19.9], [22.0, 22.0, 22.0]
    )
    assert result.fraction == pytest.approx(2.0**-10, rel=1e-9)
    assert result.lower < result.fraction < result.upper
    assert not result.detected  # 0.098 % is below the assay's 0.1 % LoD
    nine = estimate_qpcr(
        [29.0, 29.1, 28.9],
        [22.0, 22.1, 21.9],
        [20.0, 20.1, 19.9],
        [22.0, 22.0, 22.0],
        efficiency=0.9,
    )
    assert nine.fraction == pytest.approx(1.9**-9, rel=1e-9) and nine.detected
    silent = estimate_qpcr(
        [math.nan] * 3, [22.0, 22.1, 21.9], [20.0, 20.1, 19.9], [22.0, 22.0, 22.0]
    )
    assert not silent.detected and not silent.failed and silent.upper == pytest.approx(0.001)
    assert silent.summary() == "donor not detected (< LoD 0.10 %)"


def test_fish_clopper_pearson() -> None:
    none = estimate_fish(0, 1000)
    assert none.fraction == 0 and not none.detected
    assert none.upper == pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-9)  # exact 0/N bound, ~3.7/N
    some = estimate_fish(5, 400)
    from scipy.stats import beta

    assert some.lower == pytest.approx(beta.ppf(0.025, 5, 396), rel=1e-9)
    assert some.upper == pytest.approx(beta.ppf(0.975, 6, 395), rel=1e-9)
    assert some.detected
    assert [f.flag for f in estimate_fish(1, 150).flags] == ["few_nuclei"]


def test_recipient_replicates_learn_per_marker_errors() -> None:
    rng = np.random.default_rng(21)
    g_r, g_d, depth, _ = _pair(rng, 48)
    # half the markers are ten times noisier than the others
    error = np.where(np.arange(48) % 2 == 0, 5e-4, 5e-3)
    rec = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    reps = [_table(*simulate_marker_counts(rng, g_r, g_r, 0, 3 * depth, error)) for _ in range(3)]
    rates = background_error(rec, don, reps)
    hom = np.isin(g_r, (0, 2))
    learnt = rates.to_numpy()[hom]
    # ~9000 reads per marker: the noisy and the quiet markers are told apart
    assert np.median(learnt[error[hom] > 1e-3]) == pytest.approx(5e-3, rel=0.3)
    assert np.median(learnt[error[hom] < 1e-3]) == pytest.approx(5e-4, rel=0.5)
    bx = _table(*simulate_marker_counts(rng, g_r, g_d, 0.01, depth, error))
    result = estimate_counts(bx, rec, don, replicates=reps)
    assert result.lower <= 0.01 <= result.upper and result.detected


def test_str_outlier_and_saturated_loci_are_flagged_and_left_out() -> None:
    rec = {f"L{i}": (str(10 + i), str(12 + i)) for i in range(8)}
    don = {f"L{i}": (str(15 + i), str(16 + i)) for i in range(8)}
    f = 0.10
    bx = _mixture(rec, don, f, stutter=0.07)
    # L0's donor peaks are three times what the dose model gives (e.g. a pull-up peak)
    bump = (bx["marker"] == "L0") & bx["allele"].isin(don["L0"])
    bx.loc[bump, "area"] *= 3
    # L1 saturates the camera
    bx.loc[bx["marker"] == "L1", "height"] = 32000.0
    result = estimate_str(
        bx, _mixture(rec, don, 0.0, stutter=0.07), _mixture(rec, don, 1.0, stutter=0.07)
    )
    loci = result.markers.set_index("marker")
    assert loci.loc["L0", "outlier"] and not loci.loc["L0", "used"]
    assert loci.loc["L1", "saturated"] and not loci.loc["L1", "used"]
    assert {(fl.flag, fl.target) for fl in result.flags} >= {
        ("outlier_locus", "L0"),
        ("saturated_locus", "L1"),
    }
    assert result.fraction == pytest.approx(f, abs=1e-9)
    assert result.n_informative == 6 and result.details["sd"] == pytest.approx(0.0, abs=1e-12)
