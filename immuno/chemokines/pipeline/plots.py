"""Standard-curve plots: standards, fitted curve, samples and the quantifiable range."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on lab servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from immuno.chemokines.fit.curves import predict  # noqa: E402
from immuno.chemokines.fit.standards import StandardCurve  # noqa: E402
from immuno.io import atomic_path  # noqa: E402


def plot_curve(
    curve: StandardCurve,
    standards: pd.DataFrame,
    samples: pd.DataFrame,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write one analyte's curve as a PNG (log-log axes).

    Parameters
    ----------
    curve
        The fitted (or failed) curve.
    standards
        Standard wells of the analyte (expected_conc, net_mfi, standard_level).
    samples
        Quantified samples of the analyte (conc_in_well, mean_net_mfi, flag).
    path
        Output PNG; written atomically.
    title
        Plot title (plate and feature).
    """
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    try:
        excluded_levels = (
            set(curve.points.loc[curve.points.get("excluded", False) == True, "standard_level"])  # noqa: E712
            if len(curve.points)
            else set()
        )
        std = standards[standards["expected_conc"] > 0]
        kept = std[~std["standard_level"].isin(excluded_levels)]
        ax.scatter(
            kept["expected_conc"],
            kept["net_mfi"].clip(lower=0.5),
            s=22,
            color="#1f77b4",
            label="standards",
        )
        if len(kept) < len(std):
            dropped = std[std["standard_level"].isin(excluded_levels)]
            ax.scatter(
                dropped["expected_conc"],
                dropped["net_mfi"].clip(lower=0.5),
                s=30,
                marker="x",
                color="#d62728",
                label="excluded standards",
            )
        if curve.params is not None and len(std):
            lo, hi = std["expected_conc"].min() / 10, std["expected_conc"].max() * 10
            x = np.geomspace(lo, hi, 200)
            ax.plot(
                x,
                np.clip(predict(curve.params, x), 0.5, None),
                color="#333333",
                lw=1.2,
                label=f"{curve.fit.model if curve.fit else ''} fit",
            )
        inr = samples[samples["flag"] == ""] if len(samples) else samples
        if len(inr):
            ax.scatter(
                inr["conc_in_well"],
                inr["mean_net_mfi"].clip(lower=0.5),
                s=14,
                color="#2ca02c",
                alpha=0.8,
                label="samples",
            )
        drawn = ax.dataLim  # empty scatters leave it unbounded
        if not (np.isfinite([drawn.x0, drawn.x1, drawn.y0, drawn.y1]).all() and drawn.x1 > 0):
            # no standards, no fit and no quantified sample (a plate of samples only): the
            # log axes need limits of their own, and the figure says why it is empty
            ax.set_xlim(1, 1e4)
            ax.set_ylim(1, 1e4)
            ax.text(
                0.5,
                0.5,
                "no standards or samples to show",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = ax.get_ylim()[1]
        for value, name in ((curve.lloq, "LLOQ"), (curve.uloq, "ULOQ")):
            if math.isfinite(value):
                ax.axvline(value, ls="--", lw=0.8, color="#ff7f0e")
                ax.text(
                    value,
                    top,
                    f" {name}",
                    rotation=90,
                    va="top",
                    ha="left",
                    fontsize=7,
                    color="#ff7f0e",
                )
        ax.set_xlabel("concentration in well")
        ax.set_ylabel("net MFI")
        status = "" if curve.status == "ok" else f" - FAILED: {curve.reason[:60]}"
        ax.set_title(f"{title}{status}", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
