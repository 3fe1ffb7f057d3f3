"""Levey-Jennings charts across batches (with Westgard rules) and per-patient trajectories.

A chart is returned as :class:`Chart`: the table it was drawn from and a matplotlib
figure, so a notebook shows the picture and the numbers stay one attribute away.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from immuno.contract.qc import MIN_GUIDE_RUNS, westgard

#: the columns of a control-chart table
CHART_COLUMNS = ["batch_id", "sample_id", "series", "panel", "feature", "unit", "value", "mean", "sd", "z",
                 "rules", "status"]
STATUS_COLOURS = {"in_control": "#2e7d32", "warning": "#e69f00", "reject": "#b00020", "no_guide_set": "#777777"}


@dataclass
class Chart:
    """A chart: its table and its figure (a :class:`matplotlib.figure.Figure`, not
    registered with pyplot, so charts made in a loop hold no global state)."""

    table: pd.DataFrame
    figure: Any

    def _repr_png_(self) -> bytes | None:  # notebooks show the figure
        if self.figure is None:
            return None
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()


def levey_jennings(values: pd.DataFrame, order: list[str], guide_runs: int = MIN_GUIDE_RUNS) -> pd.DataFrame:
    """Judge each series of control values across batches with Westgard rules.

    Parameters
    ----------
    values
        Rows with batch_id, sample_id, series, panel, feature, unit, value: one value per
        batch and series (a control material's feature).
    order
        Batch ids in run order.
    guide_runs
        The first this many batches of a series form its guide set (mean, SD); with
        fewer there are no limits (status ``no_guide_set``).

    Returns
    -------
    pandas.DataFrame
        :data:`CHART_COLUMNS`, in series then run order.
    """
    rank = {b: i for i, b in enumerate(order)}
    rows = []
    for series, g in values[values["value"].notna()].groupby("series", sort=True):
        g = g.assign(run=g["batch_id"].map(rank)).sort_values(["run", "sample_id"]).drop_duplicates("batch_id")
        guide = g["value"].iloc[:guide_runs]
        enough = len(guide) >= guide_runs
        mean = float(guide.mean()) if enough else math.nan
        sd = float(guide.std(ddof=1)) if enough else math.nan
        broken_all = westgard(g["value"].tolist(), mean, sd) if enough else [[] for _ in range(len(g))]
        for r, broken in zip(g.itertuples(), broken_all, strict=True):
            status = ("no_guide_set" if not enough else "reject" if set(broken) - {"1-2s"}
                      else "warning" if broken else "in_control")
            rows.append({"batch_id": r.batch_id, "sample_id": r.sample_id, "series": series, "panel": r.panel,
                         "feature": r.feature, "unit": r.unit, "value": r.value, "mean": mean, "sd": sd,
                         "z": (r.value - mean) / sd if enough and sd > 0 else math.nan,
                         "rules": ",".join(broken), "status": status})
    return pd.DataFrame(rows, columns=CHART_COLUMNS)


def chart_figure(table: pd.DataFrame, order: list[str], title: str, max_series: int = 24):
    """Small multiples, one per series: value by batch with mean, ±2 SD and ±3 SD lines
    and each point coloured by its Westgard status (violated rules written beside it)."""
    from matplotlib.figure import Figure  # matplotlib: only when a chart is drawn

    series = list(dict.fromkeys(table["series"]))[:max_series]
    n = max(1, len(series))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    rank = {b: i for i, b in enumerate(order)}
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if not series:
        axes[0, 0].text(0.5, 0.5, "no control values", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, name in zip(axes.flat, series, strict=False):
        g = table[table["series"] == name].assign(x=lambda d: d["batch_id"].map(rank)).sort_values("x")
        ax.plot(g["x"], g["value"], color="#555", lw=0.8, zorder=1)
        ax.scatter(g["x"], g["value"], c=[STATUS_COLOURS[s] for s in g["status"]], s=28, zorder=2)
        mean, sd = g["mean"].iloc[0], g["sd"].iloc[0]
        if np.isfinite(mean) and np.isfinite(sd):
            ax.axhline(mean, color="#2a6f97", lw=1)
            for k, style in ((2, "--"), (3, ":")):
                ax.axhline(mean + k * sd, color="#b00020", lw=0.8, ls=style)
                ax.axhline(mean - k * sd, color="#b00020", lw=0.8, ls=style)
        for r in g.itertuples():
            if r.rules:
                ax.annotate(r.rules, (r.x, r.value), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xticks(g["x"], g["batch_id"], rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{name}", fontsize=8)
        ax.set_ylabel(str(g["unit"].iloc[0]), fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def trajectory_figure(t: pd.DataFrame, visits: list[str], title: str = ""):
    """Per-patient lines across visits, one panel per (panel, feature); censored values
    (drawn at their substitute) are hollow markers and failed values are left out."""
    import matplotlib  # matplotlib: only when a chart is drawn
    from matplotlib.figure import Figure  # matplotlib: only when a chart is drawn

    keys = list(dict.fromkeys(zip(t["panel"], t["feature"], strict=True)))
    n = max(1, len(keys))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.8 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    x = {v: i for i, v in enumerate(visits)}
    patients = sorted(set(t["patient_id"]))
    colours = {p: matplotlib.colormaps["tab10"](i % 10) for i, p in enumerate(patients)}
    for ax, (panel, feature) in zip(axes.flat, keys, strict=False):
        g = t[(t["panel"] == panel) & (t["feature"] == feature) & t["used"].notna()]
        for patient, gp in g.groupby("patient_id", sort=True):
            gp = gp.assign(x=gp["visit"].astype(str).map(x)).sort_values("x")
            ax.plot(gp["x"], gp["used"], color=colours[patient], lw=1, label=patient)
            cens = gp["censored"].astype(bool)
            ax.scatter(gp.loc[~cens, "x"], gp.loc[~cens, "used"], color=colours[patient], s=16)
            ax.scatter(gp.loc[cens, "x"], gp.loc[cens, "used"], facecolors="none", edgecolors=colours[patient], s=22)
        ax.set_xticks(range(len(visits)), visits, fontsize=8)
        ax.set_xlim(-0.4, len(visits) - 0.6)
        unit = str(g["unit"].iloc[0]) if len(g) else ""
        ax.set_title(f"{feature} [{unit}]\n{panel}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    if patients and len(patients) <= 12:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return fig
