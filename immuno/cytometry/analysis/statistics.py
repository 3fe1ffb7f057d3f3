"""Population statistics of one sample, and the panel's headline features.

Per population: the event count, the percentage of its parent, the percentage of a
reference population (CD4+ T cells by default) and the median fluorescence of every
marker. Headline features (Th1, Th2, Th17, Th1_17, Treg, Th1_Th2_ratio) are read from
these counts as the panel's ``headline:`` section says; an ICS headline is the
stimulated tube minus its unstimulated control, floored at 0, with the raw pair kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from immuno.cytometry.analysis.order_stats import middle_values
from immuno.cytometry.analysis.populations import Population, evaluate_population
from immuno.cytometry.engine.transform_base import Transform

#: columns of :func:`population_statistics`
STAT_COLUMNS = ["population", "parent", "count", "parent_count", "pct_of_parent",
                "reference", "pct_of_reference"]


def population_masks(memberships: Mapping[str, np.ndarray], populations: Sequence[Population]) -> dict[str, np.ndarray]:
    """Gate memberships plus every panel population, evaluated in panel order.

    Parameters
    ----------
    memberships
        Gate id -> boolean membership (from :func:`immuno.cytometry.analysis.gating.place_gates`);
        its ``"root"`` entry (the events acquisition QC kept) bounds every population.
    populations
        Parsed panel populations.

    Returns
    -------
    dict
        Name -> boolean mask; gates first, then populations.
    """
    masks = dict(memberships)
    root = memberships.get("root")
    for pop in populations:
        mask = evaluate_population(pop.expr, masks)
        # "!X" means kept events outside X: events acquisition QC removed never enter a population
        masks[pop.name] = mask & root if root is not None else mask
    return masks


def _pct(num: int, den: int) -> float:
    return 100.0 * num / den if den > 0 else float("nan")


def population_statistics(masks: Mapping[str, np.ndarray], parents: Mapping[str, str | None],
                          reference: str | None = None) -> pd.DataFrame:
    """Counts and percentages of every population.

    Parameters
    ----------
    masks
        Population (and gate) name -> boolean mask over all events.
    parents
        Name -> parent name (None: the root, i.e. all QC-passed events, key ``"root"``).
    reference
        A population every other one is also expressed as a percentage of (e.g.
        ``"CD4"``); skipped when None or absent.

    Returns
    -------
    pandas.DataFrame
        One row per population, columns :data:`STAT_COLUMNS`; percentages are NaN when
        the denominator is empty.
    """
    ref_count = int(masks[reference].sum()) if reference and reference in masks else 0
    rows = []
    for name, mask in masks.items():
        if name == "root":
            continue
        parent = parents.get(name) or "root"
        count = int(mask.sum())
        parent_count = int(masks[parent].sum()) if parent in masks else 0
        rows.append({"population": name, "parent": parent, "count": count,
                     "parent_count": parent_count, "pct_of_parent": _pct(count, parent_count),
                     "reference": reference if ref_count else None,
                     "pct_of_reference": _pct(count, ref_count) if ref_count else float("nan")})
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


def marker_medians(masks: Mapping[str, np.ndarray], values: np.ndarray, labels: Sequence[str],
                   columns: Sequence[int] | None = None,
                   inverse: Mapping[int, Transform | None] | None = None) -> pd.DataFrame:
    """Median of each channel in each population (the median fluorescence intensity).

    Parameters
    ----------
    masks
        Population name -> boolean mask.
    values
        Events (e.g. compensated fluorescence), n_events x n_channels; column-major
        matrices are read fastest.
    labels
        Names for the columns reported (marker names, or channels without a marker).
    columns
        Column indices of ``values`` matching ``labels`` (default: all, in order).
    inverse
        Column index -> the transform ``values`` went through. Such a column's median is
        reported on the untransformed scale: a transform is monotone, so the middle
        event is the same on both scales, and its value is mapped back (the mean of the
        two middle values, for an even count, is taken after mapping back).

    Returns
    -------
    pandas.DataFrame
        Index population, one column per label; NaN for empty populations (and where a
        value is NaN, as numpy's median says).

    Notes
    -----
    Each population's events are gathered once per channel into one scratch buffer and
    the middle values found by radix selection (:mod:`immuno.cytometry.analysis.order_stats`),
    in compiled code: no copy of the events is made per population.
    """
    cols = list(range(values.shape[1])) if columns is None else list(columns)
    inverse = inverse or {}
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    data = values if values.dtype == dtype else values.astype(dtype)
    buf = np.empty(values.shape[0], dtype=np.float32)
    hist = np.empty(1 << 16, dtype=np.int64)
    names = [name for name in masks if name != "root"]
    for name in names:
        if len(masks[name]) != values.shape[0]:
            raise ValueError(f"population {name!r} has {len(masks[name])} events, values {values.shape[0]}")
    middles = np.full((len(names), len(cols), 2), np.nan)
    # one population's rows at a time (a list of them all would hold several copies of
    # the events' indices); a column-major matrix gives each channel contiguous for free
    columns = [np.ascontiguousarray(data[:, c]) for c in cols] if data.flags.f_contiguous else None
    for i, name in enumerate(names):
        rows = np.flatnonzero(masks[name])
        if rows.size:
            for j, c in enumerate(cols):
                column = columns[j] if columns is not None else np.ascontiguousarray(data[:, c])
                middles[i, j] = middle_values(column, rows, hist, buf)
    for j, c in enumerate(cols):
        tr = inverse.get(c)
        if tr is not None and names:
            # one call per channel: the transforms' kernels are made for whole arrays
            middles[:, j] = tr.inverse(middles[:, j]).reshape(-1, 2)
    medians = middles.mean(axis=2)
    return pd.DataFrame(medians, index=pd.Index(names, dtype=object), columns=list(labels))


def _fraction(counts: Mapping[str, int], population: str, of: str) -> tuple[float, int, int]:
    num, den = int(counts.get(population, 0)), int(counts.get(of, 0))
    return _pct(num, den), num, den


def headline_features(spec: Mapping[str, Mapping[str, Any]], counts: Mapping[str, int],
                      control_counts: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The panel's headline features for one sample.

    Parameters
    ----------
    spec
        The panel's ``headline:`` mapping.
    counts
        Population name -> event count in this sample.
    control_counts
        The same for its unstimulated control (needed by ``subtract_control`` features).

    Returns
    -------
    list of dict
        Measurement rows with ``feature``, ``value``, ``unit`` and ``flag`` (e.g.
        ``no_events`` when a denominator is empty, ``undefined`` for a ratio over 0).
        Ratio features use the (background-subtracted) values of their two features.
    """
    rows: list[dict[str, Any]] = []
    values: dict[str, float] = {}
    for feature, h in spec.items():
        if "ratio" in h:
            continue
        value, _, den = _fraction(counts, h["population"], h["of"])
        flag = "no_events" if den == 0 else ""
        if h.get("subtract_control"):
            if control_counts is None:
                raise ValueError(f"headline {feature!r} subtracts a control but none was given")
            background, _, cden = _fraction(control_counts, h["population"], h["of"])
            rows.append({"feature": f"{feature}_stimulated", "value": value, "unit": h["unit"], "flag": flag})
            rows.append({"feature": f"{feature}_unstimulated", "value": background, "unit": h["unit"],
                         "flag": "no_events" if cden == 0 else ""})
            # the response is what stimulation adds; a negative difference is noise, not a response
            value = max(value - background, 0.0) if np.isfinite(value) and np.isfinite(background) else float("nan")
            flag = flag or ("no_events" if cden == 0 else "")
        values[feature] = value
        rows.append({"feature": feature, "value": value, "unit": h["unit"], "flag": flag})
    for feature, h in spec.items():
        if "ratio" not in h:
            continue
        num, den = (values.get(h["ratio"][0], float("nan")), values.get(h["ratio"][1], float("nan")))
        ok = np.isfinite(num) and np.isfinite(den) and den > 0
        rows.append({"feature": feature, "value": num / den if ok else float("nan"), "unit": h["unit"],
                     "flag": "" if ok else "undefined"})
    return rows
