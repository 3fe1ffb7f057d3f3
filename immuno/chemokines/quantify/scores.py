"""Derived chemokine scores: the Th1 / Th2 chemokine scores and their ratio.

A score is the geometric mean of its class's analytes (the panel's ``scores`` section
maps a score name to a class). Two versions are written, so that the trial's read-out
exists for every sample that has a plate and a sensitivity analysis can do without any
substitution:

* ``Th1_chemokine_score`` (and ``Th2_...``, ``Th1_Th2_chemokine_ratio``): a censored
  analyte enters at a documented substitute - LLOQ/2 when below the range, ULOQ when
  above it (LLOQ and ULOQ in sample units, i.e. with the sample's dilution). The flag
  names every substituted analyte in the measurement vocabulary's detail form, e.g.
  ``censored_inputs:CCL17+CXCL9`` (which way each was censored is in its own row).
* ``..._strict``: no substitution; empty (flag ``incomplete:...`` naming the censored
  analytes) whenever one input is censored.

An analyte with no value at all (failed curve, no usable well) leaves both versions
empty, flagged ``incomplete`` with the analyte named (``incomplete:CXCL10``): nothing is
invented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: the substitutes for censored values, as documented in docs/chemokines.md
SUBSTITUTE = {"<LLOQ": "LLOQ/2", ">ULOQ": "ULOQ"}
RATIO = "Th1_Th2_chemokine_ratio"


def substitute(value: float, flag: str, lloq: float, uloq: float) -> float:
    """The number a censored value enters a score with: LLOQ/2 below, ULOQ above; the
    value itself when in range; NaN when there is nothing to substitute."""
    if flag == "" and math.isfinite(value):
        return value
    if flag == "<LLOQ" and math.isfinite(lloq):
        return lloq / 2.0
    if flag == ">ULOQ" and math.isfinite(uloq):
        return uloq
    return math.nan


def _detail(word: str, items: list[str]) -> str:
    """A flag word with the analytes it concerns (``censored_inputs:CCL17+CXCL9``)."""
    return f"{word}:{'+'.join(sorted(set(items)))}" if items else ""


def _geomean(values: list[float]) -> float:
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or not np.all(np.isfinite(v) & (v > 0)):
        return math.nan
    return float(np.exp(np.mean(np.log(v))))


def _score(inputs: pd.DataFrame) -> dict[str, Any]:
    """Both versions of one score from its analytes' rows (feature, value, flag, lloq, uloq, qc_pass)."""
    censored, missing, subst, strict = [], [], [], []
    for r in inputs.itertuples():
        flag = str(r.flag)
        if flag in SUBSTITUTE:
            censored.append(str(r.feature))
        elif flag != "" or not math.isfinite(r.value):
            missing.append(str(r.feature))
        subst.append(substitute(float(r.value), flag, float(r.lloq), float(r.uloq)))
        strict.append(float(r.value) if flag == "" else math.nan)
    qc = bool(inputs["qc_pass"].all()) if len(inputs) else False
    if missing or not len(inputs):
        why = "incomplete:" + "+".join(sorted(missing) or ["no_analyte_of_the_class"])
        return {
            "value": math.nan,
            "flag": why,
            "qc_pass": False,
            "strict": math.nan,
            "strict_flag": why,
            "censored": censored,
        }
    value = _geomean(subst)
    return {
        "value": value,
        "flag": _detail("censored_inputs", censored),
        "qc_pass": qc and math.isfinite(value),
        "strict": _geomean(strict) if not censored else math.nan,
        "strict_flag": _detail("incomplete", censored),
        "censored": censored,
    }


def derived_scores(values: pd.DataFrame, panel: Any) -> list[dict[str, Any]]:
    """Th1/Th2 chemokine scores and their ratio, substituted and strict, per sample.

    Parameters
    ----------
    values
        One row per sample and analyte: sample_id, feature, class, value (NaN when
        censored or failed), flag, lloq, uloq (sample units), qc_pass.
    panel
        The panel whose ``scores`` section maps score names to classes.

    Returns
    -------
    list of dict
        Measurement rows: sample_id, feature, value, unit, flag, qc_pass.
    """
    scores = dict(panel.get("scores", {})) if panel is not None else {}
    unit = panel.get("unit", "pg/mL") if panel is not None else "pg/mL"
    rows: list[dict[str, Any]] = []
    for col in ("lloq", "uloq"):
        if col not in values.columns:
            values = values.assign(**{col: math.nan})
    for sample, sv in values.groupby("sample_id", sort=True):
        got: dict[str, dict[str, Any]] = {}
        for name, cls in scores.items():
            s = _score(sv[sv["class"] == cls])
            got[name] = s
            rows.append(
                {
                    "sample_id": sample,
                    "feature": name,
                    "value": s["value"],
                    "unit": unit,
                    "flag": s["flag"],
                    "qc_pass": s["qc_pass"],
                }
            )
            rows.append(
                {
                    "sample_id": sample,
                    "feature": f"{name}_strict",
                    "value": s["strict"],
                    "unit": unit,
                    "flag": s["strict_flag"],
                    "qc_pass": s["qc_pass"] and math.isfinite(s["strict"]),
                }
            )
        if {"Th1_chemokine_score", "Th2_chemokine_score"} <= set(got):
            th1, th2 = got["Th1_chemokine_score"], got["Th2_chemokine_score"]
            ratio = th1["value"] / th2["value"]
            censored = th1["censored"] + th2["censored"]
            bad = [s["flag"] for s in (th1, th2) if s["flag"].startswith("incomplete")]
            flag = (
                _detail("incomplete", [d for b in bad for d in b.split(":", 1)[1].split("+")])
                if bad
                else _detail("censored_inputs", censored)
            )
            rows.append(
                {
                    "sample_id": sample,
                    "feature": RATIO,
                    "value": ratio if math.isfinite(ratio) else math.nan,
                    "unit": "ratio",
                    "flag": flag,
                    "qc_pass": th1["qc_pass"] and th2["qc_pass"] and math.isfinite(ratio),
                }
            )
            strict = th1["strict"] / th2["strict"]
            rows.append(
                {
                    "sample_id": sample,
                    "feature": f"{RATIO}_strict",
                    "value": strict if math.isfinite(strict) else math.nan,
                    "unit": "ratio",
                    "flag": ""
                    if math.isfinite(strict)
                    else _detail(
                        "incomplete",
                        [d for b in bad for d in b.split(":", 1)[1].split("+")]
                        if bad
                        else censored,
                    ),
                    "qc_pass": math.isfinite(strict) and th1["qc_pass"] and th2["qc_pass"],
                }
            )
    return rows
