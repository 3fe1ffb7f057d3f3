"""Chimerism plots (PNG, matplotlib Agg): per-locus donor fraction, observed vs expected VAF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from immuno.chimerism.common.result import ChimerismResult  # noqa: E402
from immuno.io import atomic_path  # noqa: E402


def plot_loci(result: ChimerismResult, title: str, path: Path) -> Path:
    """Bar chart of the per-locus STR donor fractions with the mean and its interval."""
    loci = result.markers
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colours = np.where(loci["used"], "#3a6ea5", "#b0b0b0")
    ax.bar(loci["marker"], 100 * loci["donor_fraction"].fillna(0), color=colours)
    if result.estimable:
        ax.axhline(100 * result.fraction, color="#c0392b", lw=1, label="mean of loci used")
        ax.axhspan(
            100 * result.lower,
            100 * result.upper,
            color="#c0392b",
            alpha=0.12,
            label="95 % interval",
        )
    ax.axhline(100 * result.lod, color="k", ls=":", lw=1, label="LoD")
    ax.set_ylabel("donor fraction (%)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_markers(result: ChimerismResult, title: str, path: Path) -> Path:
    """Observed vs expected alternate-allele fraction per informative marker."""
    m = result.markers
    m = m[m["informative"] & m["depth"].gt(0)] if "depth" in m else m.iloc[0:0]
    fig, ax = plt.subplots(figsize=(4.2, 4))
    used = m["used"].astype(bool) if "used" in m else np.zeros(len(m), bool)
    expected = m["expected_vaf"] if "expected_vaf" in m else np.full(len(m), np.nan)
    ax.scatter(expected[used], m["vaf"][used], s=12, color="#3a6ea5", label="used")
    ax.scatter(
        m["g_recipient"][~used] / 2,
        m["vaf"][~used],
        s=12,
        color="#b0b0b0",
        label="not used (vs recipient dose)",
    )
    ax.plot([0, 1], [0, 1], color="k", lw=0.6)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("expected alternate-allele fraction")
    ax.set_ylabel("observed alternate-allele fraction")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        # the metadata pin keeps re-runs byte-identical
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
