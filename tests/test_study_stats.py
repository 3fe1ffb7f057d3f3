"""Longitudinal statistics against scipy, statsmodels and hand computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from immuno.cli import main
from immuno.contract.measurements import measurement_table
from immuno.io import write_parquet
from immuno.run.provenance import SCHEMA_VERSION
from immuno.study import Study, benjamini_hochberg, hodges_lehmann

D0 = [10.0, 12.0, 9.0, 15.0, 11.0, 14.0, 8.0, 13.0]
D10 = [7.0, 11.5, 4.0, 10.0, 10.2, 6.0, 7.5, 9.0]
M1 = [12.0, 9.0, 11.0, 14.0, 12.5, 15.5, 6.0, 16.0]


def _study(results: Path) -> Study:
    rows = []
    for i in range(8):
        for visit, values, other in (("D0", D0, 1.0 + i), ("D10", D10, 1.0 + i * 1.5), ("M1", M1, 1.0)):
            base = {"batch_id": "B1", "sample_id": f"P{i}-{visit}", "patient_id": f"P{i}", "visit": visit,
                    "assay": "chemokine", "panel": "lum", "unit": "pg/mL"}
            rows.append(base | {"feature": "CXCL10", "value": values[i]})
            rows.append(base | {"feature": "IL10", "value": other})
            # CCL17: patient 0 below LLOQ (2.0) at D0 and D10; patient 1 below at D10 only
            if (i == 0 and visit in ("D0", "D10")) or (i == 1 and visit == "D10"):
                rows.append(base | {"feature": "CCL17", "value": np.nan, "flag": "<LLOQ", "upper": 2.0})
            else:
                rows.append(base | {"feature": "CCL17", "value": values[i] * 3})
    write_parquet(measurement_table(rows), results / "B1" / "measurements.parquet")
    (results / "B1" / "provenance.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    return Study(results)


def test_compare_visits_equals_scipy_and_hand_values(tmp_path: Path) -> None:
    s = _study(tmp_path).compare_visits("CXCL10").set_index("contrast")
    for contrast, later in (("D0->D10", D10), ("D0->M1", M1)):
        d = np.array(later) - np.array(D0)
        ref = sps.wilcoxon(d)
        row = s.loc[contrast]
        assert row.n_pairs == 8
        assert row.p_value == pytest.approx(ref.pvalue) and row.wilcoxon_statistic == pytest.approx(ref.statistic)
        assert row.median_change == pytest.approx(np.median(d))
        walsh = sorted((d[i] + d[j]) / 2 for i in range(8) for j in range(i, 8))
        assert row.hl_estimate == pytest.approx(np.median(walsh))
        # n = 8 at 95 %: the signed-rank table's critical value is 3, so the interval runs
        # from the 4th smallest to the 4th largest of the 36 Walsh averages, level 1 - 10/256
        assert (row.ci_low, row.ci_high) == (pytest.approx(walsh[3]), pytest.approx(walsh[-4]))
        assert row.ci_level == pytest.approx(1 - 10 / 256)
    assert s.loc["D0->D10", "p_value"] == pytest.approx(0.0078125)  # every patient fell: 2 / 2**8


def test_hodges_lehmann_needs_six_pairs_for_95() -> None:
    assert np.isnan(hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0])[1])
    est, lo, hi, level = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (est, lo, hi) == (3.5, 1.0, 6.0) and level == pytest.approx(1 - 2 / 64)


def test_benjamini_hochberg_by_hand_and_statsmodels() -> None:
    p = [0.01, 0.04, 0.03, np.nan, 0.20]
    # by hand over the 4 p-values: sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.0533, 0.0533, 0.20
    expected = [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, np.nan, 0.20]
    np.testing.assert_allclose(benjamini_hochberg(p), expected)
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    ok = [0.01, 0.04, 0.03, 0.20]
    np.testing.assert_allclose(benjamini_hochberg(ok), multipletests(ok, method="fdr_bh")[1])


def test_bh_is_across_features_of_one_contrast(tmp_path: Path) -> None:
    s = _study(tmp_path).compare_visits(["CXCL10", "IL10", "CCL17"])
    for _, g in s.groupby("contrast"):
        np.testing.assert_allclose(g.p_adjusted, benjamini_hochberg(g.p_value.to_numpy()))


def test_censored_values_follow_the_stated_rule(tmp_path: Path) -> None:
    study = _study(tmp_path)
    sub = study.compare_visits("CCL17", visits=["D10"]).iloc[0]
    d = np.array(D10) * 3 - np.array(D0) * 3
    d[0] = 0.0                  # both below LLOQ: no direction, a zero change
    d[1] = 2.0 / 2 - D0[1] * 3  # LLOQ/2 at D10
    assert sub.n_pairs == 8 and sub.n_censored_pairs == 2
    assert sub.p_value == pytest.approx(sps.wilcoxon(d, zero_method="wilcox").pvalue)
    assert sub.median_change == pytest.approx(np.median(d))
    excl = study.compare_visits("CCL17", visits=["D10"], censored="exclude").iloc[0]
    assert excl.n_pairs == 6


def test_study_stats_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _study(tmp_path / "results")
    out = tmp_path / "stats.csv"
    assert main(["study", "stats", str(tmp_path / "results"), "--feature", "CXCL10", "IL10", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    expected = study.compare_visits(["CXCL10", "IL10"])
    np.testing.assert_allclose(table.p_adjusted, expected.p_adjusted)
    assert main(["study", "stats", str(tmp_path / "results"), "--feature", "CXCL99"]) == 2
    assert "no feature 'CXCL99'" in capsys.readouterr().err


def test_study_command_refuses_a_missing_folder_and_creates_nothing(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexistent"
    assert main(["study", str(missing)]) == 2
    assert "results folder not found" in capsys.readouterr().err and not missing.exists()
    (tmp_path / "empty").mkdir()
    assert main(["study", str(tmp_path / "empty")]) == 2
    assert "no complete batch results" in capsys.readouterr().err
    assert list((tmp_path / "empty").iterdir()) == []
