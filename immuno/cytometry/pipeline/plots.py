"""Gating figures: each gate as placed on a sample, drawn over its parent's density.

One panel per gate, in hierarchy order: a 2-D density (log counts) for gates on two
dimensions, a histogram for gates on one, with the gate's boundary on top and the
percentage of the parent inside it in the title. This is the figure a lab reviews next
to FlowJo's, and what the QC report shows per sample.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from immuno.io import atomic_path

#: events drawn per panel at most (evenly spaced, so the figure is deterministic)
MAX_DRAWN = 30000


def _limits(v: np.ndarray) -> tuple[float, float]:
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [0.1, 99.9])
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _draw_gate(ax: Any, gate: Any, xlim: tuple[float, float], ylim: tuple[float, float] | None) -> None:
    from matplotlib import patches

    kind = type(gate).__name__
    # add_artist, not add_patch: the limits are set from the events, and updating them
    # from a patch's Bezier outline costs more than drawing it
    style = {"edgecolor": "crimson", "facecolor": "none", "linewidth": 1.4}
    if kind == "RectangleGate":
        if ylim is None:
            for b in (*gate.mins, *gate.maxs):
                if b is not None:
                    ax.axvline(b, color="crimson", linewidth=1.4)
            return
        x0 = gate.mins[0] if gate.mins[0] is not None else xlim[0]
        x1 = gate.maxs[0] if gate.maxs[0] is not None else xlim[1]
        y0 = gate.mins[1] if gate.mins[1] is not None else ylim[0]
        y1 = gate.maxs[1] if gate.maxs[1] is not None else ylim[1]
        ax.add_artist(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, **style))
    elif kind == "PolygonGate":
        ax.add_artist(patches.Polygon(np.asarray(gate.vertices), closed=True, **style))
    elif kind == "EllipseGate":
        cov = np.asarray(gate.covariance, dtype=float)
        vals, vecs = np.linalg.eigh(cov)
        angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
        w, h = 2 * np.sqrt(np.maximum(vals[::-1], 0) * gate.distance_square)
        ax.add_artist(patches.Ellipse(tuple(gate.mean), w, h, angle=angle, **style))
    elif kind == "QuadrantGate":
        dims = list(gate.dims)
        for v in gate.dividers.get(dims[0], ()):
            ax.axvline(v, color="crimson", linewidth=1.4)
        if len(dims) > 1:
            for v in gate.dividers.get(dims[1], ()):
                ax.axhline(v, color="crimson", linewidth=1.4)


def _gate_key(gate: Any) -> str:
    if type(gate).__name__ == "QuadrantGate":
        return next(iter(gate.quadrants))
    return gate.gate_id


def plot_gating(events: np.ndarray, channels: Sequence[str], gates: Sequence[Any],
                memberships: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                labels: Mapping[str, str] | None = None, title: str = "") -> None:
    """Draw every gate over its parent's events and write a PNG (atomically).

    Parameters
    ----------
    events
        Transformed events (n_events x n_channels).
    channels
        Column names of ``events``.
    gates
        Static gates in hierarchy order (as placed on this sample).
    memberships
        Gate id -> boolean membership; ``"root"`` is the QC-passed events.
    path
        The PNG to write.
    labels
        Channel -> axis label (e.g. ``"CD4 (BUV395-A)"``).
    title
        Figure title (the sample id; never a patient name).
    """
    # matplotlib is imported here, not with the package: most callers never draw. A bare
    # Figure on the Agg canvas needs no display and skips pyplot's import and state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or {}
    n = max(len(gates), 1)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(3.2 * ncol, 3.0 * nrow))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, gate in zip(axes.flat, gates, strict=False):
        parent = gate.parent_id or "root"
        pmask = memberships.get(parent, memberships.get("root"))
        idx = np.flatnonzero(pmask)
        if len(idx) > MAX_DRAWN:
            idx = idx[np.linspace(0, len(idx) - 1, MAX_DRAWN).astype(np.int64)]
        dims = list(gate.dims)
        x = events[idx, list(channels).index(dims[0])]
        xlim = _limits(x)
        key = _gate_key(gate)
        inside = int(memberships[key].sum()) if key in memberships else 0
        parent_n = int(pmask.sum())
        share = (f"{100 * inside / parent_n:.1f}% of {parent if parent != 'root' else 'QC-passed events'}"
                 if parent_n else "parent empty")
        if len(dims) >= 2:
            y = events[idx, list(channels).index(dims[1])]
            ylim = _limits(y)
            h, xe, ye = np.histogram2d(x, y, bins=128, range=[xlim, ylim])
            ax.imshow(np.log1p(h.T), origin="lower", extent=[xe[0], xe[-1], ye[0], ye[-1]],
                      aspect="auto", cmap="viridis", interpolation="nearest")
            ax.set_ylabel(labels.get(dims[1], dims[1]), fontsize=8)
            _draw_gate(ax, gate, xlim, ylim)
            ax.set_ylim(ylim)
        else:
            ax.hist(x, bins=128, range=xlim, color="steelblue", histtype="stepfilled")
            _draw_gate(ax, gate, xlim, None)
        ax.set_xlim(xlim)
        ax.set_xlabel(labels.get(dims[0], dims[0]), fontsize=8)
        name = gate.gate_id if type(gate).__name__ != "QuadrantGate" else f"{gate.gate_id} (quadrants)"
        # a plain text, not set_title: placing a title measures every tick label first
        ax.text(0.5, 1.02, f"{name}: {share}", transform=ax.transAxes, ha="center", va="bottom", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=3)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed spacing: tight_layout costs more than drawing the whole figure
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12 / nrow, top=1 - 0.12 / nrow,
                        wspace=0.35, hspace=0.55)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
