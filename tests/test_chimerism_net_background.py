"""The NGS fit net of each marker's background, on real reads and on exact constructions.

Real reads: the allomix host and donor VCFs with their 10 % admixture, and the real cell-free
DNA columns of DonorGenotypeFree's allele table, in ../shared/data/real/chimerism (the tests
skip without them). In-silico mixtures are built as ``benchmarks/ngs_calibration.py`` builds
them: every person's reads split in two disjoint halves by binomial thinning, one half typed
as the reference, the biopsy drawn from the other halves.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism.ngs.background import (
    INTERVAL_METHOD,
    BackgroundPrior,
    NetLikelihood,
    fit_background_prior,
    fit_net,
)
from immuno.chimerism.ngs.counts import estimate_counts
from immuno.chimerism.ngs.exports import read_vcf
from immuno.cli import main

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "chimerism"


def _calibration() -> ModuleType:
    """benchmarks/ngs_calibration.py, whose mixtures these tests use."""
    spec = importlib.util.spec_from_file_location(
        "ngs_calibration", ROOT / "benchmarks" / "ngs_calibration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ngs_calibration"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def calibration(real_data: Path) -> ModuleType:
    if not (real_data / "chimerism" / "allomix_synthetic").is_dir():
        pytest.skip("the allomix files are not in ../shared/data/real/chimerism")
    return _calibration()


@pytest.fixture(scope="module")
def pairs(calibration: ModuleType) -> dict[str, list[tuple[pd.DataFrame, pd.DataFrame]]]:
    return calibration.people(REAL)


def test_prior_recovers_the_runs_background() -> None:
    rng = np.random.default_rng(3)
    m = np.full(400, 2000.0)
    rates = rng.beta(2.0, 998.0, 400)  # mean 0.2 %, concentration 1000
    prior = fit_background_prior(rng.binomial(m.astype(int), rates).astype(float), m)
    assert prior.level == pytest.approx(0.002, rel=0.05)
    assert 500 <= prior.alpha + prior.beta <= 2000
    # sites that agree to within their reads: the concentration stops at its ceiling
    same = fit_background_prior(np.full(50, 4.0), np.full(50, 2000.0))
    assert same.alpha + same.beta == pytest.approx(1e5, rel=0.01)


def test_exact_counts_give_the_fraction_back() -> None:
    # reads exactly at their expectations and a prior whose mode is their background: the
    # maximum is the fraction that made them
    n = np.full(30, 10_000.0)
    b = np.full(30, 0.002)
    a = np.tile([0.5, 1.0 - 0.002], 15)
    f = 0.03
    k = n * ((1 - f) * b + f * a)
    lik = NetLikelihood(
        k,
        n,
        2000 * b,
        np.full(30, 2000.0),
        2000 * a,
        np.full(30, 2000.0),
        BackgroundPrior(1.0 + 0.002 * 1000, 1.0 + 0.998 * 1000, 30),
    )
    fit = fit_net(lik)
    assert fit.fraction == pytest.approx(f, rel=1e-3)
    assert fit.lower < f < fit.upper and fit.p_value < 1e-10 and fit.lob < fit.lod < f


def test_allomix_ten_percent_inside_the_interval() -> None:
    folder = REAL / "allomix_synthetic"
    if not folder.is_dir():
        pytest.skip("the allomix files are not in ../shared/data/real/chimerism")
    r = estimate_counts(
        read_vcf(folder / "host_90_donor_10.vcf"),
        read_vcf(folder / "host.vcf"),
        read_vcf(folder / "donor.vcf"),
        model="net",
    )
    assert r.interval_method == INTERVAL_METHOD == "profile_likelihood_net_background"
    assert r.lower <= 0.10 <= r.upper and r.detected, r.summary()
    assert abs(r.fraction - 0.10) <= 0.005, r.summary()
    # the admixture's reads scatter far more than its references' (phi ~ 27): said, and the
    # interval widened by it, not an unknown person
    assert r.details["phi"] > 10
    assert [f.flag for f in r.flags] == ["interval_widened"]
    assert r.markers["expected_vaf"].notna().sum() == r.n_informative


def test_pure_recipient_reads_never_detected(
    calibration: ModuleType, pairs: dict[str, list]
) -> None:
    # the recipient's own reads as the biopsy (0 % donor), three times per pair of people,
    # both ways round: 42 biopsies, none detected at alpha 0.01
    calls = []
    for people in pairs.values():
        rng = np.random.default_rng(190)
        for bx, rec, don in calibration.replicates(people, 0.0, 3 * len(people), rng):
            r = estimate_counts(bx, rec, don, model="net")
            assert r.upper >= r.fraction >= r.lower == 0.0
            calls.append(r.detected)
    assert len(calls) == 42 and not any(calls)


def test_reference_reads_as_biopsy_not_detected(pairs: dict[str, list]) -> None:
    # the very reads the recipient reference was typed from: nothing above background
    for rec, don in pairs["allomix"] + pairs["donorgenotypefree"][:3]:
        r = estimate_counts(rec, rec, don, model="net")
        assert not r.detected and r.fraction < r.lob + 1e-12, r.summary()


def test_thinned_grid_bias_and_coverage(calibration: ModuleType, pairs: dict[str, list]) -> None:
    # 20 mixtures per level and data set (fixed seed), as the benchmark builds them
    covered = []
    for level in (0.001, 0.01, 0.1):
        est = []
        for people in pairs.values():
            rng = np.random.default_rng([19, round(level * 1e6)])
            for bx, rec, don in calibration.replicates(people, level, 20, rng):
                r = estimate_counts(bx, rec, don, model="net")
                est.append(r.fraction)
                covered.append(r.lower <= level <= r.upper)
        bias = float(np.median(est)) - level
        if level < 0.01:
            assert abs(bias) <= 0.0005, (level, bias)  # 0.05 point
        else:
            assert abs(bias / level) <= 0.05, (level, bias)
    assert 0.90 <= float(np.mean(covered)) <= 0.98, np.mean(covered)


def test_few_background_sites_are_flagged(pairs: dict[str, list]) -> None:
    rec, don = pairs["allomix"][0]
    mix = rec.copy()
    # keep 8 of the recipient's homozygous markers (and every heterozygous one)
    vaf = rec["alt_count"] / rec["depth"]
    hom = rec["marker"][(vaf < 0.1) | (vaf > 0.9)]
    keep = set(hom[:8]) | set(rec["marker"][(vaf >= 0.1) & (vaf <= 0.9)])
    sub = [t[t["marker"].isin(keep)] for t in (mix, rec, don)]
    r = estimate_counts(*sub, model="net")
    flags = {f.flag: f for f in r.flags}
    assert (
        "background_from_few_sites" in flags
        and flags["background_from_few_sites"].severity == "warning"
    )
    assert "8 recipient-homozygous" in flags["background_from_few_sites"].reason


def test_model_is_checked_and_stated() -> None:
    rng = np.random.default_rng(5)
    g = rng.integers(0, 3, 40).astype(float)
    g_d = rng.integers(0, 3, 40).astype(float)
    depth = np.full(40, 1000.0)

    def table(dose: np.ndarray) -> pd.DataFrame:
        alt = rng.binomial(1000, np.clip(dose / 2, 0.002, 0.998)).astype(float)
        return pd.DataFrame(
            {"marker": [f"m{i}" for i in range(40)], "depth": depth, "alt_count": alt}
        )

    rec, don = table(g), table(g_d)
    with pytest.raises(ValueError, match="model must be"):
        estimate_counts(rec, rec, don, model="plain")
    assert estimate_counts(rec, rec, don).interval_method == "profile_likelihood_sandwich"
    assert estimate_counts(rec, rec, don, model="net").interval_method == INTERVAL_METHOD


def test_cli_states_the_interval_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = REAL / "allomix_synthetic"
    if not folder.is_dir():
        pytest.skip("the allomix files are not in ../shared/data/real/chimerism")
    args = [
        "chimerism",
        "estimate",
        "--sample",
        str(folder / "host_90_donor_10.vcf"),
        "--recipient",
        str(folder / "host.vcf"),
        "--donor",
        str(folder / "donor.vcf"),
    ]
    assert main([*args, "--ngs-model", "net", "--out", str(tmp_path / "net")]) == 0
    saved = json.loads((tmp_path / "net" / "chimerism_result.json").read_text())
    assert saved["interval_method"] == "profile_likelihood_net_background"
    assert 8.5 <= saved["lower_pct"] <= 10.0 <= saved["upper_pct"] <= 11.5
    assert main([*args, "--out", str(tmp_path / "bb")]) == 0
    saved = json.loads((tmp_path / "bb" / "chimerism_result.json").read_text())
    assert saved["interval_method"] == "profile_likelihood_sandwich"
    capsys.readouterr()
    with pytest.raises(SystemExit) as bad:
        main([*args, "--ngs-model", "plain", "--out", str(tmp_path / "x")])
    assert bad.value.code == 2
