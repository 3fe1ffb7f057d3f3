"""Levey-Jennings tracking of plate-level values (curve EC50, kit controls) with Westgard rules.

A guide set of at least 5 earlier plates gives the mean and SD; each new plate's value
is judged by 1-2s (warning), 1-3s, 2-2s and R-4s (reject). Without a guide set of 5 the
values are recorded with no limits, so that later plates can use them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from immuno.contract.qc import MIN_GUIDE_RUNS, westgard

MIN_GUIDE = MIN_GUIDE_RUNS


def levey_jennings(
    current: pd.DataFrame, history: pd.DataFrame | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge this batch's plate values against a guide set.

    Parameters
    ----------
    current
        Columns plate_id, check (e.g. ``curve_ec50``, ``control_conc``), target, value,
        in acquisition order of plates.
    history
        Earlier plates' values in the same shape (e.g. read from a study table). When it
        holds fewer than 5 plates for a (check, target), the batch's own first 5 plates
        serve as the guide set when it has that many.

    Returns
    -------
    (metric rows, flag rows)
    """
    metrics: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    hist = (
        history
        if history is not None
        else pd.DataFrame(columns=["plate_id", "check", "target", "value"])
    )
    for (check, target), cur in current.groupby(["check", "target"], sort=True):
        guide = hist[(hist["check"] == check) & (hist["target"] == target)]["value"].dropna()
        own_guide = len(guide) < MIN_GUIDE
        if own_guide:  # the batch's first plates become the guide set, as a lab would start one
            guide = cur["value"].dropna().iloc[:MIN_GUIDE]
        name = f"levey_jennings_{check}"
        if len(guide) < MIN_GUIDE:
            for r in cur.itertuples():
                metrics.append(
                    {
                        "sample_id": "",
                        "check": name,
                        "target": target,
                        "value": r.value,
                        "passed": None,
                        "detail": f"plate {r.plate_id}; guide set of {len(guide)} plates (< {MIN_GUIDE}): no limits yet",
                    }
                )
            continue
        mean, sd = float(guide.mean()), float(guide.std(ddof=1))
        seq = cur["value"].tolist()
        for r, rules in zip(cur.itertuples(), westgard(seq, mean, sd), strict=True):
            reject = any(x != "1-2s" for x in rules)
            metrics.append(
                {
                    "sample_id": "",
                    "check": name,
                    "target": target,
                    "value": r.value,
                    "lower_limit": mean - 2 * sd,
                    "upper_limit": mean + 2 * sd,
                    "passed": not reject,
                    "detail": f"plate {r.plate_id}; guide mean {mean:.4g}, SD {sd:.4g}"
                    f"{' (this batch)' if own_guide else ''}; rules: {', '.join(rules) or 'none'}",
                }
            )
            if rules:
                flags.append(
                    {
                        "sample_id": "",
                        "target": target,
                        "flag": f"westgard_{check}",
                        "severity": "fail" if reject else "warning",
                        "reason": f"plate {r.plate_id}: {check} {r.value:.4g} violates {', '.join(rules)}",
                    }
                )
    return metrics, flags
