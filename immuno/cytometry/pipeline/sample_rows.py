"""The rows one cytometry sample adds to the measurement table and the QC tables.

Measurements: the panel's headline features (for a tube that is not itself a control)
and every gate's and population's percentage of its parent. QC: acquisition QC, each
adaptive gate's placement (a fallback is a warning flag), event counts per gate, the
headline denominators' sizes, and the reference control's headline values (the points
of the assay's Levey-Jennings chart). A fail flag marks every measurement ``qc_pass``
False.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from immuno.cytometry.analysis.statistics import headline_features

#: fewest events a headline denominator should hold before the value is trusted
MIN_DENOMINATOR = 200


def measurement_rows(row: Mapping[str, Any], headline: Mapping[str, Any], counts: Mapping[str, int],
                     control_counts: Mapping[str, int] | None, own_control: bool,
                     statistics: pd.DataFrame) -> list[dict[str, Any]]:
    """Measurement rows of one sample.

    Parameters
    ----------
    row
        The identifying columns (batch_id, sample_id, patient_id, visit, assay, panel).
    headline
        The panel's ``headline:`` section.
    counts, control_counts
        Events per population in the tube and in its control.
    own_control
        True for a control tube: it reports populations, not headline features.
    statistics
        :func:`immuno.cytometry.analysis.statistics.population_statistics` of the sample.

    Returns
    -------
    list of dict
    """
    out: list[dict[str, Any]] = []
    if not own_control and headline:
        for h in headline_features(headline, counts, control_counts):
            out.append({**row, "feature": h["feature"], "value": h["value"], "unit": h["unit"],
                        "flag": h["flag"] or None})
    for _, s in statistics.iterrows():
        out.append({**row, "feature": f"{s['population']}:pct_parent", "value": s["pct_of_parent"],
                    "unit": f"% of {s['parent']}" if s["parent"] != "root" else "% of QC-passed events",
                    "flag": "no_events" if s["parent_count"] == 0 else None})
    return out


def sample_qc_rows(base: Mapping[str, Any], acquisition: tuple[list[dict], list[dict]],
                   placements: Sequence[Mapping[str, Any]], gate_ids: Sequence[str],
                   headline: Mapping[str, Any], counts: Mapping[str, int],
                   measurements: list[dict[str, Any]], reference_control: bool) -> tuple[list[dict], list[dict]]:
    """QC metric and flag rows of one sample; sets ``qc_pass`` on its measurements.

    Parameters
    ----------
    base
        batch_id, sample_id, assay, panel.
    acquisition
        The acquisition-QC (metrics, flags) of the tube.
    placements
        How each adaptive gate was placed (:attr:`immuno.cytometry.analysis.gating.GatingResult.placements`).
    gate_ids
        Every gate (and quadrant) id of the panel.
    headline, counts
        The panel's headline section and the events per population.
    measurements
        The sample's measurement rows (their ``qc_pass`` is set here).
    reference_control
        True for the batch's reference control tube.

    Returns
    -------
    metrics, flags
    """
    metrics, flags = list(acquisition[0]), list(acquisition[1])
    for p in placements:
        metrics.append({**base, "check": "fallback_gate", "target": f"{p['gate']}:{p['dim']}",
                        "value": float(p["fallback"]), "upper_limit": 0.0, "passed": not p["fallback"],
                        "detail": f"{p['method']}: {p['detail']}"})
        if p["fallback"]:
            flags.append({**base, "target": p["gate"], "flag": "fallback_gate", "severity": "warning",
                          "reason": f"{p['method']} on {p['dim']}: {p['detail']}"})
    for gid in gate_ids:
        metrics.append({**base, "check": "gate_events", "target": gid, "value": counts.get(gid, 0), "detail": ""})
    for of in sorted({h["of"] for h in headline.values() if "of" in h}):
        value = counts.get(of, 0)
        metrics.append({**base, "check": "denominator_events", "target": of, "value": value,
                        "lower_limit": MIN_DENOMINATOR, "passed": value >= MIN_DENOMINATOR, "detail": ""})
        if value < MIN_DENOMINATOR:
            flags.append({**base, "target": of, "flag": "few_events", "severity": "warning",
                          "reason": f"{value} events in {of} (fewer than {MIN_DENOMINATOR}); "
                                    "frequencies are imprecise"})
    if reference_control:
        for m in measurements:
            if m["feature"] in headline:
                metrics.append({**base, "check": "reference_control", "target": m["feature"],
                                "value": m["value"], "detail": m["unit"]})
    fail = any(f["severity"] == "fail" for f in flags)
    for m in measurements:
        m["qc_pass"] = not fail
    return metrics, flags
