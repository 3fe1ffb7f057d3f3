"""Pass/fail per sample and assay, and the counts the report's cards show.

Every count is computed once here, from the same tables, so the cards, the matrix and
the sections agree: a *value failing QC* is a measurement row with ``qc_pass`` False
(its flag words say why), a *failed check* is a QC metric with ``passed`` False, and a
*flag* is a row of ``qc/flags.parquet`` with its severity.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from immuno.contract.batch import visit_sort_key
from immuno.contract.measurements import flag_words

ASSAYS = ("cytometry", "chemokine", "chimerism")
#: matrix cell status, worst first
STATUS_ORDER = ("fail", "warning", "pass")


def assay_counts(m: pd.DataFrame, metrics: pd.DataFrame, flags: pd.DataFrame, assay: str) -> dict[str, Any]:
    """The numbers of one assay's card."""
    ma, qa, fa = m[m.assay == assay], metrics[metrics.assay == assay], flags[flags.assay == assay]
    failing = ma[~ma.qc_pass]
    why = Counter(w for f in failing.flag for w in flag_words(f))
    return {
        "assay": assay, "n_samples": int(ma.sample_id.nunique()), "n_values": len(ma),
        "n_failing_values": len(failing), "failing_why": ", ".join(f"{n} {w}" for w, n in why.most_common()),
        "n_checks": len(qa), "n_failed_checks": int(qa.passed.eq(False).sum()),
        "flags": {s: int((fa.severity == s).sum()) for s in ("fail", "warning", "info")},
    }


def sample_status(sample_ids: set[str], m: pd.DataFrame, flags: pd.DataFrame) -> tuple[str, list[dict[str, str]]]:
    """Status of a group of samples and the reasons: ``fail`` when a fail flag is raised,
    ``warning`` for warning flags or values failing QC, ``pass`` otherwise."""
    f = flags[flags.sample_id.isin(sample_ids)]
    reasons = [{"severity": r.severity, "sample": r.sample_id, "what": f"{r.flag} ({r.target})" if r.target else r.flag,
                "reason": r.reason} for r in f.itertuples() if r.severity in ("fail", "warning")]
    bad = m[m.sample_id.isin(sample_ids) & ~m.qc_pass]
    for sample, g in bad.groupby("sample_id", sort=True):
        words = Counter(w for fl in g.flag for w in flag_words(fl))
        reasons.append({"severity": "value", "sample": sample, "what": f"{len(g)} value(s) failing QC",
                        "reason": ", ".join(f"{w} x{n}" for w, n in sorted(words.items()))
                                  + ": " + ", ".join(sorted(g.feature)[:12]) + (" ..." if len(g) > 12 else "")})
    if (f.severity == "fail").any():
        return "fail", reasons
    if reasons:
        return "warning", reasons
    return "pass", reasons


def pass_fail_matrix(m: pd.DataFrame, flags: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of (patient, visit) and the control material, one cell per assay.

    Returns
    -------
    assays, rows
        Each row: ``label``, ``control`` and ``cells`` (assay -> dict with status,
        samples and reasons, or None when the assay has no sample there).
    """
    assays = [a for a in ASSAYS if (m.assay == a).any()]
    groups = m.drop_duplicates(["assay", "sample_id"])
    keys = groups[["patient_id", "visit", "control"]].drop_duplicates()
    keys = sorted(keys.itertuples(index=False), key=lambda k: (bool(k.control), k.patient_id, visit_sort_key(k.visit)))
    rows = []
    for k in keys:
        cells = {}
        here = groups[(groups.patient_id == k.patient_id) & (groups.visit == k.visit)]
        for assay in assays:
            ids = set(here.loc[here.assay == assay, "sample_id"])
            if not ids:
                cells[assay] = None
                continue
            status, reasons = sample_status(ids, m, flags[flags.assay == assay])
            cells[assay] = {"status": status, "samples": sorted(ids), "reasons": reasons}
        rows.append({"label": f"{k.patient_id} {k.visit}".strip() + (" (control)" if k.control else ""),
                     "control": bool(k.control), "cells": cells})
    return assays, rows


def batch_level_flags(flags: pd.DataFrame, sample_ids: set[str]) -> pd.DataFrame:
    """Flags that belong to no measured sample (a plate, a curve, a control)."""
    return flags[~flags.sample_id.isin(sample_ids)]
