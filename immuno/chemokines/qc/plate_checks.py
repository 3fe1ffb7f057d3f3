"""Plate QC of wells and kit controls: the checks a plate's quantification records.

Wells left out of fits and means are flagged with their reason, wells with few beads are
flagged (below the warning count) or excluded (below the minimum, 50 and 35 beads by
default), a negative net MFI on a sample or control well is noted; each kit control's
value is judged against the lot range its export states. The checks add metric and flag
rows; they change no value.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def well_flags(
    wells: pd.DataFrame,
    names: dict[str, dict[str, str]],
    q: dict[str, Any],
    flags: list[dict[str, Any]],
) -> None:
    """Flag the wells left out (their reason), those with few beads and negative net MFI.

    Parameters
    ----------
    wells
        A plate's wells table with its ``problem`` column filled.
    names
        Export analyte label -> its ``feature`` (see
        :func:`~immuno.chemokines.quantify.multiplex.analyte_map`).
    q
        The QC rules (``bead_count_warn``, ``bead_count_min``).
    flags
        Flag rows, appended to.
    """
    for r in wells[wells["problem"] != ""].itertuples():
        flags.append(
            {
                "sample_id": r.sample_name,
                "target": f"{names[r.analyte]['feature']}@{r.well}",
                "flag": "well_excluded",
                "severity": "warning",
                "reason": f"well {r.well} left out of fits and means: {r.problem}",
            }
        )
    for r in wells[
        (wells["bead_count"] < q["bead_count_warn"]) & (wells["problem"] == "")
    ].itertuples():
        excluded = r.bead_count < q["bead_count_min"]
        flags.append(
            {
                "sample_id": r.sample_name,
                "target": f"{names[r.analyte]['feature']}@{r.well}",
                "flag": "bead_count_excluded" if excluded else "bead_count_low",
                "severity": "warning",
                "reason": f"{int(r.bead_count)} beads in well {r.well} ({'excluded, < ' if excluded else 'warn, < '}"
                f"{int(q['bead_count_min'] if excluded else q['bead_count_warn'])})",
            }
        )
    for r in wells[
        (wells["net_mfi"] < 0) & (wells["role"].isin(["unknown", "control"]))
    ].itertuples():
        flags.append(
            {
                "sample_id": r.sample_name,
                "target": f"{names[r.analyte]['feature']}@{r.well}",
                "flag": "negative_net_mfi",
                "severity": "info",
                "reason": f"net MFI {r.net_mfi:g} below the blank mean in well {r.well}",
            }
        )


def check_controls(
    samples: pd.DataFrame,
    ranges: pd.DataFrame,
    names: dict[str, dict[str, str]],
    pid: str,
    metrics: list[dict[str, Any]],
    flags: list[dict[str, Any]],
) -> None:
    """Judge each kit control's value against its lot range (a metric row per control and
    analyte; a failing flag when out of range, none when the export states no range).

    Parameters
    ----------
    samples
        The plate's sample values (``role``, ``value``, ``extrapolated``).
    ranges
        The export's control ranges (sample_name, analyte, low, high).
    names
        Export analyte label -> its ``feature``.
    pid
        The plate id, for details and reasons.
    metrics, flags
        Metric and flag rows, appended to.
    """
    if samples.empty:
        return
    rng = ranges.set_index(["sample_name", "analyte"]) if len(ranges) else None
    for r in samples[samples["role"] == "control"].itertuples():
        low = high = math.nan
        if rng is not None and (r.sample_name, r.analyte) in rng.index:
            low, high = (float(v) for v in rng.loc[(r.sample_name, r.analyte), ["low", "high"]])
        value = r.value if math.isfinite(r.value) else r.extrapolated
        passed = None if math.isnan(low) else bool(math.isfinite(value) and low <= value <= high)
        if passed is False:
            flags.append(
                {
                    "sample_id": r.sample_name,
                    "target": names[r.analyte]["feature"],
                    "flag": "control_out_of_range",
                    "severity": "fail",
                    "reason": f"plate {pid}: kit control {r.sample_name} at {value:.4g}, "
                    f"lot range {low:g}-{high:g}",
                }
            )
        metrics.append(
            {
                "sample_id": r.sample_name,
                "check": "control_range",
                "target": names[r.analyte]["feature"],
                "value": value,
                "lower_limit": low,
                "upper_limit": high,
                "passed": passed,
                "detail": f"plate {pid}; kit control {r.sample_name}",
            }
        )
