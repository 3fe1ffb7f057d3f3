"""Standard levels of one analyte on a plate, and the anchor points among them.

Standards are grouped into levels by their expected concentration and ordered by it,
whichever end the export's numbering starts from (S1 may be the highest or the lowest).
A numbering that is not monotone in concentration (S1 10000, S2 2.5, S3 625) points to a
locale-corrupted number and fails the analyte.

Anchor points (ICH M10): a dilution series often runs past the assay's dynamic range.
Levels at the bottom whose mean net MFI is not above the blank wells' noise (3 SD of the
blanks, at least 1 MFI unit, and never <= 0), and levels at the top on the saturation
plateau (less than 5 % above the next lower level), carry little information on
concentration: they are recorded as anchor points outside the range, which (as ICH M10
allows) help the fit but are not subject to, and do not count in, the acceptance rules.
``anchors: none`` in a panel's curve section turns this off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Levels:
    """Standard wells grouped into levels (highest concentration first)."""

    table: dict[str, np.ndarray]
    codes: np.ndarray  # level of each well
    x_w: np.ndarray
    y_w: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.table)


def standard_levels(std: pd.DataFrame) -> tuple[Levels | None, str]:
    """The standard wells of one analyte grouped into levels, and what is wrong with them.

    Returns
    -------
    (levels, problem)
        ``levels`` is None when no well has an expected concentration and a net MFI;
        ``problem`` is empty when the levels can be fitted.
    """
    x_w = std["expected_conc"].to_numpy(dtype=float)
    y_w = std["net_mfi"].to_numpy(dtype=float)
    num_w = (
        std["standard_level"].to_numpy(dtype=float)
        if "standard_level" in std
        else np.full(len(x_w), np.nan)
    )
    keep = np.isfinite(y_w) & np.isfinite(x_w) & (x_w > 0)
    x_w, y_w, num_w = x_w[keep], y_w[keep], num_w[keep]
    if len(y_w) == 0:
        return None, "no standard wells with an expected concentration and a net MFI"
    conc, codes = np.unique(-x_w, return_inverse=True)  # highest concentration first
    conc = -conc
    n = len(conc)
    count = np.bincount(codes, minlength=n)
    first = np.zeros(n, dtype=int)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    numbers = num_w[first]
    table = {
        "standard_level": np.where(np.isfinite(numbers), numbers, np.arange(1, n + 1, dtype=float)),
        "expected_conc": conc,
        "mean_net_mfi": np.bincount(codes, weights=y_w, minlength=n) / count,
        "n_wells": count,
        "excluded": np.zeros(n, dtype=bool),
        "anchor": np.zeros(n, dtype=bool),
        "note": np.full(n, "", dtype=object),
    }
    levels = Levels(table, codes, x_w, y_w)
    # the export's numbering must run with concentration, one way or the other
    if np.isfinite(num_w).all() and len(np.unique(num_w)) > 1:
        numbers_u, first_n = np.unique(num_w, return_index=True)
        by_number = x_w[first_n]
        steps = np.diff(by_number)
        if not (np.all(steps < 0) or np.all(steps > 0)):
            shown = ", ".join(f"S{int(k)} {v:g}" for k, v in zip(numbers_u, by_number, strict=True))
            return levels, (
                "expected concentrations do not decrease (or increase) steadily with the standard "
                f"numbering ({shown}); check the export's number format"
            )
    return levels, ""


def mark_anchors(lv: Levels, blank_net: np.ndarray | None, rules: dict) -> list[str]:
    """Mark the levels outside the assay's dynamic range as anchor points (in place).

    Returns
    -------
    list of str
        One note per anchor point, for the curve's record.
    """
    t = lv.table
    n = len(t["expected_conc"])
    if str(rules.get("anchors", "auto")) == "none" or n < 3:
        return []
    y = t["mean_net_mfi"]
    b = np.asarray(blank_net if blank_net is not None else [], dtype=float)
    b = b[np.isfinite(b)]
    sd = max(float(np.std(b, ddof=1)), 1.0) if len(b) >= 2 else math.nan
    floor = float(rules["background_sd"]) * sd if math.isfinite(sd) else 0.0
    notes = []
    # the lowest levels, as long as they are not above the blank noise
    for i in range(n - 1, 1, -1):
        if y[i] > floor:
            break
        t["anchor"][i] = True
        t["note"][i] = (
            f"net MFI {y[i]:.4g} not above the blank noise ({rules['background_sd']:g} SD = {floor:.3g})"
            if floor > 0
            else f"net MFI {y[i]:.4g} not above the blank"
        )
    # the highest levels, as long as they sit on the saturation plateau
    for i in range(0, n - 2):
        if t["anchor"][i + 1] or y[i] > float(rules["plateau_rise"]) * y[i + 1]:
            break
        t["anchor"][i] = True
        t["note"][i] = f"net MFI {y[i]:.4g} on the saturation plateau (next level {y[i + 1]:.4g})"
    for i in np.flatnonzero(t["anchor"]):
        notes.append(
            f"standard {int(t['standard_level'][i])} ({t['expected_conc'][i]:g}): {t['note'][i]}; "
            "anchor point outside the range, not fitted"
        )
    return notes
