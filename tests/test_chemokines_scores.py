"""Derived chemokine scores: substituted (LLOQ/2, ULOQ) for every sample with a plate,
strict (no substitution) for sensitivity analyses, against hand computations and the
demo truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import derived_scores, process_batch
from immuno.chemokines.quantify.scores import substitute
from immuno.contract.batch import load_batch
from immuno.contract.panels import find_panel
from immuno.demo import make_demo_batch


def _rows(sample: str, values: dict[str, tuple[float, str]]) -> list[dict]:
    cls = {
        "CXCL9": "Th1",
        "CXCL10": "Th1",
        "CXCL11": "Th1",
        "CCL17": "Th2",
        "CCL22": "Th2",
        "CCL11": "Th2",
    }
    return [
        {
            "sample_id": sample,
            "feature": f,
            "class": cls[f],
            "value": v,
            "flag": flag,
            "lloq": 2.0,
            "uloq": 1000.0,
            "qc_pass": flag != "curve_failed",
        }
        for f, (v, flag) in values.items()
    ]


def test_substitutes() -> None:
    assert substitute(12.0, "", 2.0, 1000.0) == 12.0
    assert substitute(math.nan, "<LLOQ", 2.0, 1000.0) == 1.0
    assert substitute(math.nan, ">ULOQ", 2.0, 1000.0) == 1000.0
    assert math.isnan(substitute(math.nan, "curve_failed", 2.0, 1000.0))


def test_scores_substituted_strict_and_flags() -> None:
    rows = _rows(
        "S1",
        {
            "CXCL9": (math.nan, "<LLOQ"),
            "CXCL10": (50.0, ""),
            "CXCL11": (math.nan, ">ULOQ"),
            "CCL17": (20.0, ""),
            "CCL22": (40.0, ""),
            "CCL11": (80.0, ""),
        },
    )
    rows += _rows(
        "S2",
        {
            "CXCL9": (10.0, ""),
            "CXCL10": (math.nan, "curve_failed"),
            "CXCL11": (30.0, ""),
            "CCL17": (20.0, ""),
            "CCL22": (40.0, ""),
            "CCL11": (80.0, ""),
        },
    )
    out = pd.DataFrame(derived_scores(pd.DataFrame(rows), find_panel("chemokine_demo"))).set_index(
        ["sample_id", "feature"]
    )
    th1 = (1.0 * 50.0 * 1000.0) ** (1 / 3)  # LLOQ/2 = 1, ULOQ = 1000
    th2 = (20.0 * 40.0 * 80.0) ** (1 / 3)
    assert out.loc[("S1", "Th1_chemokine_score"), "value"] == pytest.approx(th1)
    assert out.loc[("S1", "Th1_chemokine_score"), "flag"] == "censored_inputs:CXCL11+CXCL9"
    assert bool(out.loc[("S1", "Th1_chemokine_score"), "qc_pass"])
    assert math.isnan(out.loc[("S1", "Th1_chemokine_score_strict"), "value"])
    assert out.loc[("S1", "Th1_chemokine_score_strict"), "flag"] == "incomplete:CXCL11+CXCL9"
    assert out.loc[("S1", "Th2_chemokine_score_strict"), "value"] == pytest.approx(th2)
    assert out.loc[("S1", "Th1_Th2_chemokine_ratio"), "value"] == pytest.approx(th1 / th2)
    assert out.loc[("S1", "Th1_Th2_chemokine_ratio"), "flag"] == "censored_inputs:CXCL11+CXCL9"
    assert math.isnan(out.loc[("S1", "Th1_Th2_chemokine_ratio_strict"), "value"])
    # a failed analyte is not censored: nothing can stand in for it, in either version
    for feat in ("Th1_chemokine_score", "Th1_chemokine_score_strict", "Th1_Th2_chemokine_ratio"):
        assert math.isnan(out.loc[("S2", feat), "value"]) and not out.loc[("S2", feat), "qc_pass"]
        assert out.loc[("S2", feat), "flag"] == "incomplete:CXCL10"


def test_demo_scores_exist_for_every_sample_and_match_truth(tmp_path: Path) -> None:
    folder = make_demo_batch(
        tmp_path / "b", seed=20261126, patients=4, events=1000, assays=("chemokine",)
    )
    table = process_batch(load_batch(folder), tmp_path / "out", plots=False)
    truth = pd.read_csv(folder / "truth.csv", keep_default_na=False, na_values=[""])
    truth["flag"] = truth["flag"].fillna("")
    j = table.merge(truth, on=["sample_id", "feature"], suffixes=("", "_true"))
    samples = set(table["sample_id"])
    for feat in ("Th1_chemokine_score", "Th2_chemokine_score", "Th1_Th2_chemokine_ratio"):
        g = j[j["feature"] == feat]
        assert (
            set(g["sample_id"]) == samples and g["value"].notna().all()
        )  # every sample that has a plate
        # the same analytes named as censored; a score resting on an input that failed QC
        # also carries the measurement table's qc_failed word
        words = (
            g["flag"]
            .str.replace(";qc_failed", "", regex=False)
            .str.replace("qc_failed", "", regex=False)
        )
        assert (words == g["flag_true"]).all()
        failed_inputs = set(
            j.loc[~j["qc_pass"] & ~j["feature"].str.contains("score|ratio"), "sample_id"]
        )
        assert set(g.loc[g["flag"].str.contains("qc_failed"), "sample_id"]) <= failed_inputs
        assert np.median(np.abs(g["value"] / g["value_true"] - 1)) <= 0.03
        strict = j[j["feature"] == f"{feat}_strict"]
        assert (strict["value"].isna() == strict["value_true"].isna()).all()
        strict_words = (
            strict["flag"]
            .str.replace(";qc_failed", "", regex=False)
            .str.replace("qc_failed", "", regex=False)
        )
        assert (strict_words == strict["flag_true"]).all()
    substituted = j[
        (j["feature"] == "Th1_chemokine_score") & j["flag"].str.startswith("censored_inputs:")
    ]
    assert len(substituted) >= 1
