"""Gating figures: each gate as placed on a sample, drawn over its parent's density.

One panel per gate, in hierarchy order: a 2-D density (log counts, viridis) for gates
on two dimensions, a histogram for gates on one, with the gate's boundary on top and
the percentage of the parent inside it in the title. This is the figure a lab reviews
next to FlowJo's, and what the QC report shows per sample.

The figure is rasterised directly with Pillow (density images, outlines and labels in
pixels): every tube of a batch draws one, and a plotting library's general machinery
(artists, tick locators, layout) cost several times the tube's own processing. The
pixels are deterministic for the same events.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from immuno.io import atomic_path

__all__ = ["MAX_DRAWN", "plot_gating"]

#: events drawn per panel at most (evenly spaced, so the figure is deterministic)
MAX_DRAWN = 30000
#: panel size in pixels and the plot area's margins inside it (left, top, right, bottom)
PANEL = (256, 240)
MARGINS = (44, 20, 8, 36)
BINS = 128
GATE_COLOUR = (220, 20, 60)  # crimson
HIST_COLOUR = (70, 130, 180)  # steelblue
#: viridis (CC0), 64 stops, interpolated to 256
_VIRIDIS = bytes.fromhex(
    "44015446075a470d6047136548186a481d6f482374482878472d7b46327e453781443b844240864045883e49893d4e8a3a538b38"
    "588c365c8d34608d32648e31688e2f6c8e2d708e2c738e2a778e297b8e277f8e26828e24868e238a8d218e8d20928c1f968b1f"
    "9a8a1f9e891fa18721a58523a98326ad812ab07f2fb47c35b7793bbb7542be714ac16d52c5695ac86465cb5e6ece5877d15381"
    "d34d8bd64695d840a0da39aadc32b5de2bc0df25cae11fd5e21adfe318eae51af4e61efde725")


def _lut() -> np.ndarray:
    stops = np.frombuffer(_VIRIDIS, dtype=np.uint8).reshape(-1, 3).astype(float)
    at = np.linspace(0, 1, len(stops))
    grid = np.linspace(0, 1, 256)
    return np.stack([np.interp(grid, at, stops[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def _limits(v: np.ndarray) -> tuple[float, float]:
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [0.1, 99.9])
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _ticks(lo: float, hi: float, most: int = 4) -> list[float]:
    """Round tick values inside [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return []
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step) + 1)]


def _label(value: float) -> str:
    return f"{value:.6g}" if value != 0 else "0"


def _gate_key(gate: Any) -> str:
    if type(gate).__name__ == "QuadrantGate":
        return next(iter(gate.quadrants))
    return gate.gate_id


class _Axes:
    """Data -> pixel coordinates of one panel's plot area."""

    def __init__(self, width: int, height: int, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        self.width, self.height, self.xlim, self.ylim = width, height, xlim, ylim

    def x(self, v: float | np.ndarray) -> Any:
        return (np.asarray(v, dtype=float) - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (self.width - 1)

    def y(self, v: float | np.ndarray) -> Any:
        return (1 - (np.asarray(v, dtype=float) - self.ylim[0]) / (self.ylim[1] - self.ylim[0])) * (self.height - 1)


def _draw_gate(draw: Any, gate: Any, axes: _Axes, one_dim: bool) -> None:
    kind = type(gate).__name__
    line = {"fill": GATE_COLOUR, "width": 2}
    top, bottom = 0, axes.height - 1
    if kind == "RectangleGate":
        if one_dim:
            for b in (*gate.mins, *gate.maxs):
                if b is not None:
                    draw.line([(float(axes.x(b)), top), (float(axes.x(b)), bottom)], **line)
            return
        x0 = gate.mins[0] if gate.mins[0] is not None else axes.xlim[0] - 1e9
        x1 = gate.maxs[0] if gate.maxs[0] is not None else axes.xlim[1] + 1e9
        y0 = gate.mins[1] if gate.mins[1] is not None else axes.ylim[0] - 1e9
        y1 = gate.maxs[1] if gate.maxs[1] is not None else axes.ylim[1] + 1e9
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    elif kind == "PolygonGate":
        corners = [*gate.vertices, gate.vertices[0]]
    elif kind == "EllipseGate":
        vals, vecs = np.linalg.eigh(np.asarray(gate.covariance, dtype=float)[:2, :2])
        radii = np.sqrt(np.maximum(vals, 0) * gate.distance_square)
        t = np.linspace(0, 2 * np.pi, 121)
        pts = (vecs @ np.vstack([radii[0] * np.cos(t), radii[1] * np.sin(t)])).T + np.asarray(gate.mean[:2])
        corners = [tuple(p) for p in pts]
    elif kind == "QuadrantGate":
        dims = list(gate.dims)
        for v in gate.dividers.get(dims[0], ()):
            draw.line([(float(axes.x(v)), top), (float(axes.x(v)), bottom)], **line)
        if len(dims) > 1 and not one_dim:
            for v in gate.dividers.get(dims[1], ()):
                draw.line([(0, float(axes.y(v))), (axes.width - 1, float(axes.y(v)))], **line)
        return
    else:
        return
    xy = [(float(axes.x(a)), float(axes.y(b))) for a, b in corners]
    frame = (-10.0, -10.0, axes.width + 10.0, axes.height + 10.0)
    for start, end in zip(xy[:-1], xy[1:], strict=True):
        seg = _clip(start, end, frame)
        if seg is not None:
            draw.line(seg, **line)


def _clip(a: tuple[float, float], b: tuple[float, float],
          frame: tuple[float, float, float, float]) -> list[tuple[float, float]] | None:
    """The part of segment a-b inside the frame (Liang-Barsky), or None: far-away corners
    (a rectangle's open side, a wedge's apex) must not distort the lines drawn."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - frame[0]), (dx, frame[2] - x0), (-dy, y0 - frame[1]), (dy, frame[3] - y0)):
        if p == 0:
            if q < 0:
                return None
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None
    return [(x0 + t0 * dx, y0 + t0 * dy), (x0 + t1 * dx, y0 + t1 * dy)]


def _panel(events: np.ndarray, index: Mapping[str, int], gate: Any, memberships: Mapping[str, np.ndarray],
           labels: Mapping[str, str], fonts: tuple[Any, Any], lut: np.ndarray) -> Any:
    from PIL import Image, ImageDraw  # Pillow: only when a figure is drawn (never with --no-plots)

    small, normal = fonts
    width, height = PANEL
    left, top, right, bottom = MARGINS
    area_w, area_h = width - left - right, height - top - bottom
    panel = Image.new("RGB", PANEL, "white")
    draw = ImageDraw.Draw(panel)
    parent = gate.parent_id or "root"
    pmask = memberships.get(parent, memberships.get("root"))
    idx = np.flatnonzero(pmask)
    parent_n = idx.size
    if idx.size > MAX_DRAWN:
        idx = idx[np.linspace(0, idx.size - 1, MAX_DRAWN).astype(np.int64)]
    dims = list(gate.dims)
    x = events[idx, index[dims[0]]]
    xlim = _limits(x)
    area = Image.new("RGB", (area_w, area_h), "white")
    if len(dims) >= 2:
        y = events[idx, index[dims[1]]]
        ylim = _limits(y)
        h, _, _ = np.histogram2d(x, y, bins=BINS, range=[xlim, ylim])
        level = np.log1p(h.T[::-1])
        shade = (level / level.max() * 255).astype(np.uint8) if level.max() > 0 else np.zeros_like(level, np.uint8)
        area = Image.fromarray(lut[shade]).resize((area_w, area_h), Image.Resampling.NEAREST)
        axes = _Axes(area_w, area_h, xlim, ylim)
        _draw_gate(ImageDraw.Draw(area), gate, axes, one_dim=False)
        ylabel = labels.get(dims[1], dims[1])
    else:
        counts, edges = np.histogram(x, bins=BINS, range=xlim)
        ylim = (0.0, float(max(counts.max(), 1)) * 1.05)
        axes = _Axes(area_w, area_h, xlim, ylim)
        adraw = ImageDraw.Draw(area)
        base = float(axes.y(0.0))
        for c, e0, e1 in zip(counts, edges[:-1], edges[1:], strict=True):
            if c:
                adraw.rectangle([float(axes.x(e0)), float(axes.y(c)), float(axes.x(e1)), base], fill=HIST_COLOUR)
        _draw_gate(adraw, gate, axes, one_dim=True)
        ylabel = ""
    panel.paste(area, (left, top))
    draw.rectangle([left - 1, top - 1, left + area_w, top + area_h], outline="black")
    for v in _ticks(*xlim):
        px = left + float(axes.x(v))
        draw.line([(px, top + area_h), (px, top + area_h + 3)], fill="black")
        draw.text((px, top + area_h + 4), _label(v), fill="black", font=small, anchor="mt")
    for v in _ticks(*ylim):
        py = top + float(axes.y(v))
        draw.line([(left - 4, py), (left - 1, py)], fill="black")
        draw.text((left - 6, py), _label(v), fill="black", font=small, anchor="rm")
    draw.text((left + area_w / 2, height - 2), labels.get(dims[0], dims[0]), fill="black", font=small, anchor="md")
    if ylabel:
        box = draw.textbbox((0, 0), ylabel, font=small)
        text = Image.new("RGB", (box[2] - box[0] + 2, box[3] - box[1] + 4), "white")
        ImageDraw.Draw(text).text((1 - box[0], 2 - box[1]), ylabel, fill="black", font=small)
        rotated = text.rotate(90, expand=True)
        panel.paste(rotated, (1, top + (area_h - rotated.height) // 2))
    key = _gate_key(gate)
    inside = int(memberships[key].sum()) if key in memberships else 0
    share = (f"{100 * inside / parent_n:.1f}% of {parent if parent != 'root' else 'QC-passed events'}"
             if parent_n else "parent empty")
    name = gate.gate_id if type(gate).__name__ != "QuadrantGate" else f"{gate.gate_id} (quadrants)"
    draw.text((left + area_w / 2, top - 4), f"{name}: {share}", fill="black", font=normal, anchor="md")
    return panel


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
    from PIL import Image, ImageDraw, ImageFont  # Pillow: only when a figure is drawn

    labels = labels or {}
    fonts = (ImageFont.load_default(size=10), ImageFont.load_default(size=11))
    index = {c: i for i, c in enumerate(channels)}
    lut = _lut()
    n = max(len(gates), 1)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    band = 22 if title else 0
    figure = Image.new("RGB", (PANEL[0] * ncol, PANEL[1] * nrow + band), "white")
    for k, gate in enumerate(gates):
        row, col = divmod(k, ncol)
        figure.paste(_panel(events, index, gate, memberships, labels, fonts, lut),
                     (col * PANEL[0], band + row * PANEL[1]))
    if title:
        ImageDraw.Draw(figure).text((figure.width / 2, 4), title, fill="black",
                                    font=ImageFont.load_default(size=13), anchor="mt")
    with atomic_path(path) as tmp:
        figure.save(tmp, format="PNG")
