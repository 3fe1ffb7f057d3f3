"""Bead populations of one LEGENDplex well: groups by size, bead IDs by dye, reporter MFI.

A LEGENDplex (BioLegend) well is a flow cytometry file of capture beads. Beads come in
groups of two sizes, told apart by forward and side scatter (group A the smaller, B the
larger, as the panel's ``groups`` list orders them by forward scatter); inside a group
each bead ID carries its own amount of a classification dye (APC, read in FL6 on a
CytoFLEX), and the analyte bound to the bead is read on the reporter (PE, FL2). The
analysis here is the one beadplexr and FlowCytometryTools users do by hand, made
adaptive and checked:

1. groups: a 2-D Gaussian mixture with a uniform background, fitted by EM on
   log10(FSC), log10(SSC) (:mod:`~immuno.chemokines.io.mixture`), started from the
   density peaks and from seeded k-means++ draws; an event belongs to a group when its
   posterior is over one half and it lies within the 99 % ellipse of the group;
2. bead IDs: in each group, the density peaks of log10(classification); bead
   populations are tight, so they are the tallest peaks, and a 1-D mixture started at
   them (with a uniform background for doublets and dye-negative events) gives each event
   its bead, within 3 SD of the bead's centre; beads are matched to the panel's bead IDs
   in order of increasing dye, as the panel lists them;
3. per bead: event count, reporter median (the bead's MFI) and CV.

A well whose beads cannot all be told apart is refused with one message naming the
well: too few events, a channel missing (not a bead file), fewer bead populations than
the panel lists (one missing or two merged), or a population twice as spread as its
neighbours (two merged, or no bead at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.io.mixture import (
    Mixture,
    density_peaks_1d,
    density_peaks_2d,
    fit_em,
    kmeans_pp,
)
from immuno.errors import UserError

#: squared Mahalanobis radius holding 99 % of a 2-D normal (chi-square, 2 degrees of freedom)
_GROUP_RADIUS2 = 9.21
#: an event belongs to a bead within this many standard deviations of its centre
_BEAD_SD = 3.0
#: a bead population at least this many times as spread as the median bead of its group
#: is two populations merged, or none
_MERGED_SPREAD = 2.5
#: a bead population's density peak falls by at least this share of its height on both
#: sides (beads of one group are well apart); a wiggle on a broad cloud of cells does not
_MIN_PROMINENCE = 0.3
#: the dye mixture is fitted on events within this many bandwidths of a bead's peak
_FIT_WINDOW = 6.0
#: a population of fewer events than this is not a bead population
_MIN_POPULATION = 10
#: fits use at most this many events (a seeded sample); every event is then classified
_MAX_FIT_EVENTS = 50_000
#: the starts of the scatter-group fit are compared on this many events
_START_EVENTS = 3_000

BEAD_COLUMNS = [
    "group",
    "bead",
    "analyte",
    "events",
    "classification_median",
    "reporter_median",
    "reporter_cv",
]


@dataclass(frozen=True)
class BeadMap:
    """Which bead carries which analyte, and the channels that tell them apart.

    Attributes
    ----------
    groups
        Bead groups in order of increasing forward scatter (``A``, ``B``).
    beads
        ``(group, bead ID, analyte label)`` in order of increasing classification dye
        within each group.
    scatter_channels
        The two size channels (``FSC-A``, ``SSC-A``).
    classification_channel, reporter_channel
        ``$PnN`` of the bead-ID dye and of the reporter (``FL6-H``, ``FL2-H``).
    """

    groups: tuple[str, ...]
    beads: tuple[tuple[str, str, str], ...]
    scatter_channels: tuple[str, str] = ("FSC-A", "SSC-A")
    classification_channel: str = "FL6-H"
    reporter_channel: str = "FL2-H"

    def in_group(self, group: str) -> list[tuple[str, str, str]]:
        """The group's beads, in order of increasing dye."""
        return [b for b in self.beads if b[0] == group]

    @classmethod
    def from_panel(cls, panel: Any, where: str = "panel") -> BeadMap:
        """The bead map of a chemokine panel's ``beads:`` section.

        Raises
        ------
        UserError
            When the panel has no ``beads:`` section or a group without beads.
        """
        spec = panel.get("beads") if panel is not None else None
        if not spec:
            raise UserError.single(
                where,
                "a LEGENDplex plate needs a panel with a beads: section (bead groups, bead IDs "
                "and their analytes, classification and reporter channels)",
            )
        populations = tuple(
            (str(p["group"]), str(p["bead"]), str(p["analyte"])) for p in spec["populations"]
        )
        groups = tuple(
            str(g) for g in spec.get("groups") or dict.fromkeys(p[0] for p in populations)
        )
        empty = [g for g in groups if not any(p[0] == g for p in populations)]
        if empty:
            raise UserError.single(where, f"bead group(s) {', '.join(empty)} list no bead")
        scatter = tuple(spec.get("scatter_channels", ("FSC-A", "SSC-A")))
        return cls(
            groups=groups,
            beads=populations,
            scatter_channels=(str(scatter[0]), str(scatter[1])),
            classification_channel=str(spec.get("classification_channel", "FL6-H")),
            reporter_channel=str(spec.get("reporter_channel", "FL2-H")),
        )


@dataclass
class WellBeads:
    """The bead populations found in one well.

    Attributes
    ----------
    table
        One row per panel bead (:data:`BEAD_COLUMNS`).
    labels
        Per event: the index of its bead in ``BeadMap.beads``, or -1 (not a bead event).
    n_events
        Events in the well.
    """

    table: pd.DataFrame
    labels: np.ndarray
    n_events: int


def _log10(v: np.ndarray) -> np.ndarray:
    # scatter and dye heights are positive; an event at or below 1 is noise, kept at 0
    return np.log10(np.clip(v.astype(np.float64), 1.0, None))


def _fit_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= _MAX_FIT_EVENTS:
        return np.arange(n)
    return np.sort(rng.choice(n, _MAX_FIT_EVENTS, replace=False))


def _groups(z: np.ndarray, n_groups: int, seed: int, where: str, n_init: int = 3) -> np.ndarray:
    """Per event, the index of its scatter group (in order of forward scatter) or -1."""
    rng = np.random.default_rng(seed)
    fit = z[_fit_sample(len(z), rng)]
    spread = (np.percentile(fit, 75, axis=0) - np.percentile(fit, 25, axis=0)) / 1.349
    tight = np.diag((spread / (2.0 * n_groups)) ** 2 + 1e-6)
    # one more, broad component takes debris and doublets, which are too dense near the
    # beads for the uniform background alone
    cov0 = np.stack([*([tight] * n_groups), np.cov(fit.T) + np.eye(2) * 1e-6])
    centre = np.median(fit, axis=0)[None, :]
    starts = []
    peaks = density_peaks_2d(fit)
    if len(peaks) >= n_groups:
        starts.append(np.vstack([np.array([p.position for p in peaks[:n_groups]]), centre]))
    starts += [np.vstack([kmeans_pp(fit, n_groups, rng), centre]) for _ in range(n_init)]
    # every start is run on a sample of the events, the best one then on all of them
    few = fit[np.sort(rng.choice(len(fit), min(len(fit), _START_EVENTS), replace=False))]
    best = max((fit_em(few, s, cov0) for s in starts), key=lambda m: m.log_likelihood)
    mix = fit_em(fit, best.means, best.covariances, background=float(best.weights[-1]))
    # the bead groups are the densest components (weight over spread); the other is debris
    density = mix.weights[:-1] / np.sqrt(np.linalg.det(mix.covariances))
    keep = np.sort(np.argsort(-density)[:n_groups])
    mix = Mixture(
        np.append(mix.weights[keep], mix.weights[-1]),
        mix.means[keep],
        mix.covariances[keep],
        mix.background_density,
        mix.log_likelihood,
    )
    order = np.argsort(mix.means[:, 0])
    post = mix.posteriors(z)
    d2 = mix.mahalanobis2(z)
    best = np.argmax(post[:, :n_groups], axis=1)
    rows = np.arange(len(z))
    member = (post[rows, best] > 0.5) & (d2[rows, best] <= _GROUP_RADIUS2)
    rank = np.empty(n_groups, dtype=int)
    rank[order] = np.arange(n_groups)
    _check_groups_apart(mix, order, where)
    return np.where(member, rank[best], -1)


def _check_groups_apart(mix: Mixture, order: np.ndarray, where: str) -> None:
    for a, b in zip(order[:-1], order[1:], strict=True):
        # each group's centre must lie outside the other's 99 % ellipse
        gap = mix.mahalanobis2(mix.means[[a, b]])
        if gap[0, b] <= _GROUP_RADIUS2 or gap[1, a] <= _GROUP_RADIUS2:
            raise UserError.single(
                where,
                "the bead groups are not separated by forward/side scatter (two groups merged, "
                "or not a bead well)",
            )


def _beads_in_group(
    v: np.ndarray, n_beads: int, group: str, bandwidth: float, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per event of the group: the rank of its bead by dye (or -1); and the beads' spreads."""
    if len(v) < n_beads * _MIN_POPULATION:
        raise UserError.single(
            where,
            f"bead group {group} has {len(v)} events, too few to tell {n_beads} beads apart "
            f"(at least {n_beads * _MIN_POPULATION})",
        )
    peaks = [
        p
        for p in density_peaks_1d(v, bandwidth)
        if p.prominence >= _MIN_PROMINENCE * p.height
        and np.sum(np.abs(v - p.position[0]) < 2 * bandwidth) >= _MIN_POPULATION
    ]
    if len(peaks) < n_beads:
        raise UserError.single(
            where,
            f"bead group {group}: {len(peaks)} bead populations found by "
            f"classification dye, the panel lists {n_beads} (a bead population is missing "
            "or two are merged)",
        )
    centres = np.sort([p.position[0] for p in peaks[:n_beads]])
    # fitted on the events near the chosen peaks only: a dye-negative cloud or doublets
    # beyond the ladder would otherwise widen the nearest bead to reach them
    near = np.min(np.abs(v[:, None] - centres[None, :]), axis=1) <= _FIT_WINDOW * bandwidth
    mix = fit_em(
        v[near, None], centres[:, None], np.full((n_beads, 1, 1), bandwidth**2), background=0.1
    )
    means = mix.means[:, 0]
    sds = np.sqrt(mix.covariances[:, 0, 0])
    order = np.argsort(means)
    post = mix.posteriors(v[:, None])
    best = np.argmax(post, axis=1)
    idx = np.minimum(best, n_beads - 1)
    z = np.abs(v - means[idx]) / sds[idx]
    ok = (best < n_beads) & (post[np.arange(len(v)), idx] > 0.5) & (z <= _BEAD_SD)
    rank = np.empty(n_beads, dtype=int)
    rank[order] = np.arange(n_beads)
    labels = np.where(ok, rank[idx], -1)
    return labels, sds[order]


def check_header(channels: list[str], n_events: int, bead_map: BeadMap, where: str) -> None:
    """What a well's header alone tells: the panel's channels are there, and enough events.

    Raises
    ------
    UserError
        Naming the well: a channel missing (not a bead file) or too few events.
    """
    missing = [
        c
        for c in (
            *bead_map.scatter_channels,
            bead_map.classification_channel,
            bead_map.reporter_channel,
        )
        if c not in channels
    ]
    if missing:
        raise UserError.single(
            where,
            f"not a LEGENDplex bead file: no channel {', '.join(missing)} "
            f"(it has {', '.join(channels)})",
        )
    need = len(bead_map.beads) * _MIN_POPULATION
    if n_events < need:
        raise UserError.single(
            where,
            f"{n_events} events, too few to classify {len(bead_map.beads)} beads (at least {need})",
        )


def classify_events(
    events: np.ndarray,
    channels: list[str],
    bead_map: BeadMap,
    seed: int = 0,
    where: str = "well",
    bandwidth: float = 0.02,
) -> WellBeads:
    """Find every bead population of one well and its reporter MFI.

    Parameters
    ----------
    events
        ``(n, channels)`` events as read from the FCS file (linear values).
    channels
        ``$PnN`` of the columns.
    bead_map
        The panel's beads and channels.
    seed
        Seed of the k-means++ starts (and of the sample fitted, for wells of more than
        50,000 events); a well whose beads are well apart classifies the same for any seed.
    where
        Names the well in messages (``well A7 (K2-C07-A7.fcs)``).
    bandwidth
        Kernel of the dye density, in log10 units (a bead's dye spreads ~0.02-0.04).

    Returns
    -------
    WellBeads

    Raises
    ------
    UserError
        Naming the well: a channel missing (not a bead file), too few events, a bead
        population missing or two merged.
    """
    n = int(events.shape[0])
    check_header(channels, n, bead_map, where)
    col = {c: channels.index(c) for c in channels}
    z = _log10(events[:, [col[bead_map.scatter_channels[0]], col[bead_map.scatter_channels[1]]]])
    dye = _log10(events[:, col[bead_map.classification_channel]])
    reporter = events[:, col[bead_map.reporter_channel]].astype(np.float64)
    groups = _groups(z, len(bead_map.groups), seed, where)
    labels = np.full(n, -1, dtype=int)
    rows = []
    offset = 0
    for g, group in enumerate(bead_map.groups):
        members = bead_map.in_group(group)
        inside = np.flatnonzero(groups == g)
        ranks, sds = _beads_in_group(dye[inside], len(members), group, bandwidth, where)
        typical = float(np.median(sds))
        for r, (grp, bead, analyte) in enumerate(members):
            if sds[r] > _MERGED_SPREAD * typical and len(members) > 2:
                raise UserError.single(
                    where,
                    f"bead {bead} (group {grp}, {analyte}): its dye spreads {sds[r] / typical:.1f} "
                    "times as wide as the group's other beads (two bead populations merged, or "
                    "no bead population there)",
                )
            ev = inside[ranks == r]
            labels[ev] = offset + r
            values = reporter[ev]
            mean = float(values.mean()) if len(values) else float("nan")
            rows.append(
                {
                    "group": grp,
                    "bead": bead,
                    "analyte": analyte,
                    "events": len(ev),
                    "classification_median": float(np.median(10 ** dye[ev])) if len(ev) else np.nan,
                    "reporter_median": float(np.median(values)) if len(ev) else np.nan,
                    "reporter_cv": float(100.0 * values.std(ddof=1) / mean)
                    if len(ev) > 1 and mean > 0
                    else np.nan,
                }
            )
        offset += len(members)
    table = pd.DataFrame(rows, columns=BEAD_COLUMNS)
    thin = table[table["events"] < _MIN_POPULATION]
    if len(thin):
        b = thin.iloc[0]
        raise UserError.single(
            where,
            f"bead {b['bead']} (group {b['group']}, {b['analyte']}): {int(b['events'])} events, "
            f"fewer than {_MIN_POPULATION}",
        )
    return WellBeads(table=table, labels=labels, n_events=n)
