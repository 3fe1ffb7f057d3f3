"""Synthetic flow cytometry for the demo batch, with its ground truth.

Each tube is simulated the way the signal arises on a BD FACSymphony-like instrument:
cells of known kinds (debris, dead cells, monocytes, B, NK, CD4 and CD8 T cells, doublets
of two cells) get a true fluorescence per fluorochrome (autofluorescence plus log-normal
staining of the markers they carry), the instrument's spillover is applied
(observed = true x S), then detector noise (electronic plus photon statistics, so
compensated negatives spread below zero). Events arrive as a Poisson process; some tubes
get a clog (a rate drop, then a burst with shifted signal) and a few events sit at the
top of the range. Files are FCS 3.1 with $SPILLOVER, $TIMESTEP, $BTIM/$ETIM and $PnS.

The truth is what was *realised*: population frequencies are counted from the simulated
labels of the events a perfect analysis would keep (singlet, live, not disturbed, not at
the margin), so the pipeline can be judged tightly. Per-event labels go to
``cytometry/truth_events/<sample>.npz`` for tests; analysis code never reads them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from immuno.cytometry.io.fcs import format_spillover, write_fcs
from immuno.io import atomic_path

K = 1  # this assay's stream of the demo seed
ICS_PANEL = "cytometry_ics_demo"
SURFACE_PANEL = "cytometry_surface_demo"
PNR = 262144.0
TIMESTEP = 0.01  # seconds per Time tick, as BD instruments write it
EVENT_RATE = 400.0  # events per second in stable flow

SCATTER = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"]
FLUORS = ["BUV395-A", "BV421-A", "BV510-A", "BV605-A", "BV711-A", "BV786-A",
          "FITC-A", "PE-A", "PE-Cy7-A", "PerCP-Cy5.5-A", "APC-A", "APC-R700-A"]
CHANNELS = [*SCATTER, *FLUORS, "Time"]

SHARED = {"BUV395-A": "CD3", "BV510-A": "Viability", "BV605-A": "CD4", "APC-R700-A": "CD8"}
ICS_STAINS = {**SHARED, "FITC-A": "IFNg", "PE-A": "IL4", "APC-A": "IL17A"}
SURFACE_STAINS = {**SHARED, "BV711-A": "CD45RA", "BV421-A": "CXCR3", "PE-Cy7-A": "CCR4",
                  "PerCP-Cy5.5-A": "CCR6", "FITC-A": "CD25", "BV786-A": "CD127"}

# Spillover of each fluorochrome (row: its primary detector) into the other detectors.
_SPILL = {
    "BUV395-A": {"BV421-A": 0.02, "BV510-A": 0.01},
    "BV421-A": {"BV510-A": 0.18, "BV605-A": 0.03, "BV711-A": 0.01},
    "BV510-A": {"BV605-A": 0.12, "BV711-A": 0.03, "FITC-A": 0.04},
    "BV605-A": {"BV711-A": 0.22, "BV786-A": 0.05, "PE-A": 0.02},
    "BV711-A": {"BV786-A": 0.28, "PerCP-Cy5.5-A": 0.03, "APC-R700-A": 0.02},
    "BV786-A": {"PE-Cy7-A": 0.04, "APC-R700-A": 0.01},
    "FITC-A": {"PE-A": 0.21, "PerCP-Cy5.5-A": 0.04, "BV510-A": 0.02},
    "PE-A": {"PE-Cy7-A": 0.06, "PerCP-Cy5.5-A": 0.12, "FITC-A": 0.01, "BV605-A": 0.05},
    "PE-Cy7-A": {"APC-R700-A": 0.03, "BV786-A": 0.15, "PE-A": 0.02},
    "PerCP-Cy5.5-A": {"APC-R700-A": 0.14, "PE-Cy7-A": 0.09, "BV711-A": 0.08},
    "APC-A": {"APC-R700-A": 0.31, "PerCP-Cy5.5-A": 0.02, "BV711-A": 0.01},
    "APC-R700-A": {"APC-A": 0.05, "PE-Cy7-A": 0.04, "BV786-A": 0.02},
}

# median true brightness of a stained marker (instrument units), log-normal spread
BRIGHT = {"CD3": 6000, "CD4": 5000, "CD8": 10000, "Viability": 15000, "IFNg": 4000, "IL4": 2500,
          "IL17A": 3000, "CD45RA": 6000, "CXCR3": 2500, "CCR4": 3000, "CCR6": 3500,
          "CD25": 5000, "CD127": 3000}
SIGMA = 0.35
DIM_FRACTION = 0.13  # brightness of dim expressers relative to bright ones
NOISE_SD = 40.0  # electronic noise of a detector (instrument units)
AUTOFLUOR = 40.0

KINDS = ["debris", "dead", "monocyte", "B", "NK", "CD4T", "CD8T", "DNT"]
_KIND_P = np.array([0.06, 0.07, 0.12, 0.08, 0.09, 0.38, 0.17, 0.03])
DOUBLET_FRACTION = 0.04
MARGIN_FRACTION = 0.002


def true_spillover() -> tuple[list[str], np.ndarray]:
    """The instrument's spillover matrix used for every demo file (rows: source)."""
    s = np.eye(len(FLUORS))
    for src, row in _SPILL.items():
        for dst, v in row.items():
            s[FLUORS.index(src), FLUORS.index(dst)] = v
    return list(FLUORS), s


@dataclass
class TubeParams:
    """Subset frequencies a tube is simulated with (fractions, not percent)."""

    th1: float = 0.15
    th2: float = 0.025
    th17: float = 0.012
    th1_17: float = 0.08
    treg: float = 0.055
    naive: float = 0.45
    extra: dict[str, float] = field(default_factory=dict)


def _lognormal(rng: np.random.Generator, median: float, n: int, sigma: float = SIGMA) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _positivity(rng: np.random.Generator, kind: np.ndarray, tube: str, p: TubeParams) -> dict[str, np.ndarray]:
    """Which events carry each marker (booleans), by cell kind and T-helper subset."""
    n = kind.size
    is_ = {k: kind == i for i, k in enumerate(KINDS)}
    u = rng.random((n, 4))
    t_cell = is_["CD4T"] | is_["CD8T"] | is_["DNT"]
    pos = {
        "CD3": t_cell | (is_["dead"] & (u[:, 0] < 0.5)),
        "CD4": is_["CD4T"] | (is_["dead"] & (u[:, 0] < 0.3)),
        "CD4dim": is_["monocyte"],
        "CD8": is_["CD8T"] | (is_["dead"] & (u[:, 0] >= 0.3) & (u[:, 0] < 0.45)),
        "CD8dim": is_["NK"] & (u[:, 1] < 0.3),
        "Viability": is_["dead"],
    }
    cd4 = is_["CD4T"]
    if tube in ("stimulated", "unstimulated"):
        # categories of CD4 T cells: IFNg only, IL4 only, IL17A only, IFNg+IL17A, IFNg+IL4
        stim = tube == "stimulated"
        th1, th2, th17 = (p.th1, p.th2, p.th17) if stim else (0.0015, 0.0010, 0.0008)
        dbl = 0.003 if stim else 0.0002
        probs = np.array([th1 - 0.2 * th17, th2, 0.8 * th17, 0.2 * th17, dbl])
        cat = np.searchsorted(np.cumsum(probs), u[:, 2], side="right")  # len(probs) = none
        ifng = cd4 & np.isin(cat, [0, 3, 4])
        pos["IFNg"] = ifng | ((is_["CD8T"] | is_["NK"]) & (u[:, 3] < (0.25 if stim else 0.002)))
        pos["IL4"] = cd4 & np.isin(cat, [1, 4])
        pos["IL17A"] = cd4 & np.isin(cat, [2, 3])
    elif tube == "surface":
        naive = u[:, 1] < p.naive
        probs = np.array([p.th1, p.th2, p.th17, p.th1_17])
        cat = np.searchsorted(np.cumsum(probs), u[:, 2], side="right")  # 4 = other memory
        v = rng.random((n, 5))
        mem = cd4 & ~naive
        other = cat == 4
        cxcr3 = mem & ((cat == 0) | (cat == 3) | (other & (v[:, 0] < 0.25)))
        ccr4 = mem & ((cat == 1) | (cat == 2) | ((cat == 3) & (v[:, 1] < 0.3)) | (other & (v[:, 0] < 0.25)))
        ccr6 = mem & ((cat == 2) | (cat == 3) | (other & (v[:, 0] >= 0.25) & (v[:, 0] < 0.5)))
        treg = cd4 & (v[:, 2] < p.treg)
        # Tregs carry their own receptor pattern (mostly CCR4+, as in blood)
        w = rng.random((n, 4))
        naive = np.where(treg, w[:, 0] < 0.25, naive)
        cxcr3 = np.where(treg, ~naive & (w[:, 1] < 0.10), cxcr3)
        ccr4 = np.where(treg, ~naive & (w[:, 2] < 0.70), ccr4)
        ccr6 = np.where(treg, ~naive & (w[:, 3] < 0.20), ccr6)
        pos["CD45RA"] = (cd4 & naive) | (is_["CD8T"] & (v[:, 3] < 0.6)) | is_["B"] | is_["NK"]
        pos["CXCR3"] = cxcr3 | (is_["CD8T"] & (v[:, 4] < 0.4))
        pos["CCR4"], pos["CCR6"] = ccr4, ccr6
        pos["CD25"] = cd4 & treg
        pos["CD25dim"] = cd4 & ~treg & (v[:, 4] < 0.25)
        pos["CD127"] = (cd4 & ~treg & (v[:, 3] < 0.92)) | (is_["CD8T"] & (v[:, 3] < 0.8))
    return pos


def _scatter(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """FSC-A, FSC-H, SSC-A, SSC-H of singlets by cell kind."""
    n = kind.size
    fsc_med = np.array([9000, 42000, 95000, 62000, 68000, 64000, 64000, 64000], float)[kind]
    ssc_med = np.array([2500, 24000, 42000, 13000, 17000, 14000, 14000, 14000], float)[kind]
    fsc_sd = np.where(kind == 0, 0.7, 0.12)
    ssc_sd = np.where(kind == 0, 0.8, 0.22)
    out = np.empty((n, 4))
    out[:, 0] = fsc_med * np.exp(fsc_sd * rng.standard_normal(n))
    out[:, 1] = out[:, 0] * rng.normal(0.88, 0.03, n)
    out[:, 2] = ssc_med * np.exp(ssc_sd * rng.standard_normal(n))
    out[:, 3] = out[:, 2] * rng.normal(0.90, 0.04, n)
    return out


def _arrivals(rng: np.random.Generator, n: int, clog: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sorted arrival times (s) of a Poisson process, and which events fall in the clog."""
    duration = n / EVENT_RATE
    if not clog:
        return np.sort(rng.uniform(0.0, duration, n)), np.zeros(n, bool)
    start = duration * rng.uniform(0.3, 0.65)
    drop, burst = 0.04 * duration, 0.02 * duration
    knots = np.array([0.0, start, start + drop, start + drop + burst, duration + drop + burst])
    rates = np.array([1.0, 0.1, 3.0, 1.0])  # relative rate: steady, drop, burst, steady
    cum = np.concatenate([[0.0], np.cumsum(rates * np.diff(knots))])
    times = np.interp(np.sort(rng.uniform(0.0, cum[-1], n)), cum, knots)
    return times, (times >= knots[1]) & (times < knots[3])


def tube_stains(tube: str) -> dict[str, str]:
    """The demo's staining of a tube kind: fluorochrome channel -> marker."""
    if tube in ("stimulated", "unstimulated"):
        return dict(ICS_STAINS)
    return dict(SURFACE_STAINS) if tube == "surface" else {}


def simulate_events(rng: np.random.Generator, n: int, tube: str, params: TubeParams,
                    clog: bool = False, stains: Mapping[str, str] | None = None,
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Events (n x len(CHANNELS), float32) of one PBMC tube and their per-event labels.

    ``tube`` is stimulated / unstimulated (ICS), surface, or unstained. ``stains``
    (fluorochrome channel of :data:`FLUORS` -> marker) puts the markers on other
    fluorochromes than the demo panels do (default: :func:`tube_stains`).
    """
    _, spill = true_spillover()
    kind = rng.choice(len(KINDS), size=n, p=_KIND_P)
    stains = tube_stains(tube) if stains is None else dict(stains)
    unknown = [c for c in stains if c not in FLUORS]
    if unknown:
        raise ValueError(f"stains name channel(s) {unknown} the demo instrument lacks ({FLUORS})")
    pos = _positivity(rng, kind, tube, params)
    af_scale = np.where(kind == 2, 2.5, np.where(kind == 0, 0.4, 1.0))
    true = AUTOFLUOR * af_scale[:, None] * np.exp(0.4 * rng.standard_normal((n, len(FLUORS))))
    for channel, marker in stains.items():
        j = FLUORS.index(channel)
        signal = pos.get(marker, np.zeros(n, bool)) * _lognormal(rng, BRIGHT[marker], n)
        if f"{marker}dim" in pos:  # dim expressers: CD4 on monocytes, CD8 on NK, CD25 on activated T
            signal += pos[f"{marker}dim"] * _lognormal(rng, BRIGHT[marker] * DIM_FRACTION, n)
        true[:, j] += signal
    scatter = _scatter(rng, kind)
    # doublets: an event takes on a second random cell's light as well
    doublet = (rng.random(n) < DOUBLET_FRACTION) & (kind != 0)
    idx = np.flatnonzero(doublet)
    mate = rng.integers(0, n, idx.size)
    mate = np.where(kind[mate] == 0, (mate + 1) % n, mate)
    true[idx] += true[mate]
    scatter[idx, 0] += scatter[mate, 0]
    scatter[idx, 2] += scatter[mate, 2]
    scatter[idx, 1] = np.maximum(scatter[idx, 1], scatter[mate, 1]) * 1.05
    scatter[idx, 3] = np.maximum(scatter[idx, 3], scatter[mate, 3]) * 1.05
    times, disturbed = _arrivals(rng, n, clog)
    if clog:
        # a partial clog dims everything the laser sees while it lasts
        true[disturbed] *= 0.65
        scatter[disturbed] *= 0.75
    observed = true @ spill
    observed += rng.standard_normal(observed.shape) * np.sqrt(NOISE_SD**2 + 1.5 * observed)
    scatter += rng.standard_normal(scatter.shape) * 400.0
    events = np.empty((n, len(CHANNELS)), dtype=np.float64)
    events[:, :4] = scatter
    events[:, 4:4 + len(FLUORS)] = observed
    events[:, -1] = times / TIMESTEP
    # a few events saturate one detector; the instrument writes them at the top of the range
    sat = rng.random(n) < MARGIN_FRACTION
    events[sat, rng.integers(0, 4 + len(FLUORS), int(sat.sum()))] = PNR - 1
    np.minimum(events[:, :-1], PNR - 1, out=events[:, :-1])
    margin = (events[:, :-1] >= PNR - 1).any(axis=1)
    labels = {"kind": kind.astype(np.int8), "doublet": doublet, "disturbed": disturbed,
              "margin": margin, **{f"pos_{m}": v for m, v in pos.items()}}
    return events.astype(np.float32), labels


def _pct(mask: np.ndarray, among: np.ndarray) -> float:
    return float(100.0 * np.count_nonzero(mask & among) / max(np.count_nonzero(among), 1))


def realised_truth(tube: str, labels: dict[str, np.ndarray]) -> dict[str, tuple[float, str]]:
    """Headline frequencies realised in a tube's events: feature -> (value, unit)."""
    keep = (labels["kind"] == KINDS.index("CD4T")) & ~labels["doublet"] & ~labels["disturbed"] & ~labels["margin"]
    if tube in ("stimulated", "unstimulated"):
        ifng, il4, il17 = labels["pos_IFNg"], labels["pos_IL4"], labels["pos_IL17A"]
        unit = "% of CD4+"
        return {"IFNG_CD4": (_pct(ifng & ~il4, keep), unit), "IL4_CD4": (_pct(il4 & ~ifng, keep), unit),
                "IL17A_CD4": (_pct(il17, keep), unit)}
    if tube == "surface":
        # HIPC: Treg (CD25 high, CD127 low) among CD4+; the T-helper subsets among the
        # non-Treg memory (CD45RA-) CD4+ T cells
        treg = labels["pos_CD25"] & ~labels["pos_CD127"]
        mem = keep & ~labels["pos_CD45RA"] & ~treg
        x3, r4, r6 = labels["pos_CXCR3"], labels["pos_CCR4"], labels["pos_CCR6"]
        unit = "% of memory CD4+"
        th1, th2 = _pct(x3 & ~r6 & ~r4, mem), _pct(r4 & ~x3 & ~r6, mem)
        return {"Th1": (th1, unit), "Th2": (th2, unit), "Th17": (_pct(r6 & r4 & ~x3, mem), unit),
                "Th1_17": (_pct(x3 & r6, mem), unit), "Treg": (_pct(treg, keep), "% of CD4+"),
                "Th1_Th2_ratio": (th1 / th2 if th2 > 0 else float("nan"), "ratio")}
    return {}


def _keywords(sample_id: str, tube_label: str, duration: float,
              channel_names: Mapping[str, str] | None = None) -> dict[str, str]:
    channels, spill = true_spillover()
    channels = [(channel_names or {}).get(c, c) for c in channels]
    start = 9 * 3600 + 30 * 60
    end = start + int(round(duration))
    hms = [f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}" for t in (start, end)]
    return {"$CYT": "FACSymphony A5", "$DATE": "12-MAR-2026", "$BTIM": hms[0], "$ETIM": hms[1],
            "$TIMESTEP": str(TIMESTEP), "$SPILLOVER": format_spillover(channels, spill),
            "$FIL": f"{sample_id}.fcs", "$SRC": sample_id, "TUBE NAME": tube_label,
            "EXPERIMENT NAME": "LYSYME demo", "CREATOR": "BD FACSDiva Software Version 9.0"}


def write_tube(path: Path, sample_id: str, tube: str, events: np.ndarray,
               stains: Mapping[str, str] | None = None, channel_names: Mapping[str, str] | None = None,
               label_every_channel: bool = False) -> Path:
    """Write one simulated tube as the instrument would (FCS 3.1, $PnS from the stains).

    ``channel_names`` renames channels ($PnN and the $SPILLOVER header), as another
    instrument (e.g. detector names such as ``V1-A``) would write them.
    ``label_every_channel`` writes a $PnS on every channel, as Miltenyi MACSQuant, Accuri
    and Beckman Coulter software do: the channel's own name on scatter, Time and
    unstained detectors, "marker fluorochrome" (``CD3 BUV395``) on stained ones.
    """
    if stains is None:
        stains = tube_stains(tube)
    if tube.startswith("SS-"):
        stains = {tube[3:]: tube[3:-2]}
    markers = [stains.get(c) for c in CHANNELS]
    names = [(channel_names or {}).get(c, c) for c in CHANNELS]
    if label_every_channel:
        markers = [f"{m} {c.removesuffix('-A')}" if m else n for m, c, n in zip(markers, CHANNELS, names, strict=True)]
    duration = float(events[:, -1].max() * TIMESTEP) if len(events) else 0.0
    return write_fcs(path, events, names, markers, _keywords(sample_id, tube, duration, channel_names),
                     ranges=[PNR] * len(CHANNELS))


def simulate_tube(path: str | Path, tube: str = "surface", events: int = 1_000_000, seed: int = 0,
                  clog: bool = False, params: TubeParams | None = None, *,
                  stains: Mapping[str, str] | None = None,
                  channel_names: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Write one PBMC tube of ``events`` events (benchmarks, tests) and return its labels.

    ``stains`` (fluorochrome channel -> marker) and ``channel_names`` (demo channel ->
    name written in the file) simulate another panel or instrument.
    """
    rng = np.random.default_rng([seed, K, 999])
    ev, labels = simulate_events(rng, events, tube, params or TubeParams(), clog=clog, stains=stains)
    write_tube(Path(path), Path(path).stem, tube, ev, stains=stains, channel_names=channel_names)
    return labels


def single_stain_events(rng: np.random.Generator, n: int, channel: str | None) -> np.ndarray:
    """Compensation beads: half unstained, half bright in ``channel`` (None: all unstained)."""
    _, spill = true_spillover()
    debris = rng.random(n) < 0.03
    positive = (rng.random(n) < 0.5) & ~debris & (channel is not None)
    true = 60.0 * np.exp(0.3 * rng.standard_normal((n, len(FLUORS))))
    if channel is not None:
        true[:, FLUORS.index(channel)] += positive * _lognormal(rng, 25000.0, n, 0.2)
    observed = true @ spill
    observed += rng.standard_normal(observed.shape) * np.sqrt(NOISE_SD**2 + 1.5 * observed)
    events = np.empty((n, len(CHANNELS)))
    fsc = np.where(debris, _lognormal(rng, 8000, n, 0.7), rng.normal(70000, 3000, n))
    ssc = np.where(debris, _lognormal(rng, 2500, n, 0.8), rng.normal(25000, 1500, n))
    events[:, 0], events[:, 1] = fsc, fsc * rng.normal(0.9, 0.02, n)
    events[:, 2], events[:, 3] = ssc, ssc * rng.normal(0.9, 0.02, n)
    events[:, 4:4 + len(FLUORS)] = observed
    events[:, -1] = np.sort(rng.uniform(0.0, n / EVENT_RATE, n)) / TIMESTEP
    np.minimum(events[:, :-1], PNR - 1, out=events[:, :-1])
    return events.astype(np.float32)


def _patient_params(rng: np.random.Generator, patients: list[str], visits: list[str]) -> dict[tuple[str, str], TubeParams]:
    """Per patient and visit: responders lose Th1 and gain Treg/Th2 after the infusion."""
    out = {}
    for i, p in enumerate(patients):
        base = TubeParams(th1=rng.uniform(0.12, 0.22), th2=rng.uniform(0.015, 0.04),
                          th17=rng.uniform(0.008, 0.02), th1_17=rng.uniform(0.06, 0.10),
                          treg=rng.uniform(0.04, 0.07), naive=rng.uniform(0.35, 0.55))
        mem = {"th1": rng.uniform(0.20, 0.30), "th2": rng.uniform(0.15, 0.22), "th17": rng.uniform(0.08, 0.14)}
        responder = i == 0 or rng.random() < 0.5
        for k, v in enumerate(visits):
            step = min(k, 2)
            if responder:
                f_th1, f_th2, f_treg = (1.0, 0.65, 0.55)[step], (1.0, 1.15, 1.25)[step], (1.0, 1.35, 1.6)[step]
            else:
                f_th1, f_th2, f_treg = rng.uniform(0.92, 1.08, 3)
            out[p, v] = TubeParams(th1=base.th1 * f_th1, th2=base.th2 * f_th2, th17=base.th17,
                                   th1_17=base.th1_17, treg=base.treg * f_treg, naive=base.naive,
                                   extra={"mem_th1": mem["th1"] * f_th1, "mem_th2": mem["th2"] * f_th2,
                                          "mem_th17": mem["th17"]})
    return out


def _surface_params(p: TubeParams) -> TubeParams:
    e = p.extra
    return TubeParams(th1=e.get("mem_th1", 0.25), th2=e.get("mem_th2", 0.18), th17=e.get("mem_th17", 0.1),
                      th1_17=p.th1_17, treg=p.treg, naive=p.naive)


def _save_labels(path: Path, labels: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, kind_names=np.array(KINDS), **labels)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def simulate(out: Path, seed: int, patients: list[str], visits: list[str],
             events: int) -> tuple[list[dict], list[dict]]:
    """Write the demo's FCS files under ``out/cytometry`` and return (sheet rows, truth rows).

    Per patient and visit: an ICS pair (stimulated and unstimulated) and a surface tube;
    per batch: a single stain per fluorochrome, an unstained tube and the reference
    control (ICS pair and surface tube of the same PBMC aliquot). About a quarter of the
    patient tubes carry a clog; the first surface tube has a $PnS on every channel.
    """
    out = Path(out)
    folder = out / "cytometry"
    rng = np.random.default_rng([seed, K])
    params = _patient_params(rng, patients, visits)
    params["REFCTRL", ""] = TubeParams(extra={"mem_th1": 0.25, "mem_th2": 0.18, "mem_th17": 0.11})
    rows: list[dict] = []
    truth: list[dict] = []
    plan: list[tuple[str, str, str, str, str, TubeParams]] = []  # sample, patient, visit, tube, control_of
    for (p, v), prm in params.items():
        prefix = f"{p}-{v}" if p != "REFCTRL" else "REFCTRL"
        plan += [(f"{prefix}-ICS-STIM", p, v, "stimulated", "", prm),
                 (f"{prefix}-ICS-UNSTIM", p, v, "unstimulated", f"{prefix}-ICS-STIM", prm),
                 (f"{prefix}-SURF", p, v, "surface", "", _surface_params(prm))]
    clogged = rng.random(len(plan)) < 0.25
    clogged[0] = True  # at least one disturbed file in every demo batch
    realised: dict[str, dict[str, tuple[float, str]]] = {}
    # one tube labels every channel in $PnS, as MACSQuant/Accuri/Beckman software does: the
    # workflow must read, check and store such files like any other
    labelled_all = next(sid for sid, *_, tube, _, _ in plan if tube == "surface")
    for i, (sid, p, v, tube, ctrl, prm) in enumerate(plan):
        is_ref = p == "REFCTRL"
        clog = bool(clogged[i]) and not is_ref
        ev, labels = simulate_events(np.random.default_rng([seed, K, i]), events, tube, prm, clog=clog)
        write_tube(folder / f"{sid}.fcs", sid, tube, ev, label_every_channel=sid == labelled_all)
        _save_labels(folder / "truth_events" / f"{sid}.npz", labels)
        panel = SURFACE_PANEL if tube == "surface" else ICS_PANEL
        kind = "reference_control" if is_ref else ("stained" if tube == "surface" else tube)
        rows.append({"sample_id": sid, "patient_id": p, "visit": v, "assay": "cytometry",
                     "file": f"cytometry/{sid}.fcs", "panel": panel, "tube": kind, "control_of": ctrl})
        realised[sid] = realised_truth(tube, labels)
        for feat, n_ev in (("clog_events", labels["disturbed"]), ("margin_events", labels["margin"])):
            truth.append({"sample_id": sid, "assay": "cytometry", "panel": panel, "feature": feat,
                          "value": int(np.count_nonzero(n_ev)), "unit": "events", "flag": ""})
        if tube == "surface":
            truth += [{"sample_id": sid, "assay": "cytometry", "panel": panel, "feature": f,
                       "value": val, "unit": unit, "flag": ""} for f, (val, unit) in realised[sid].items()]
        if tube == "unstimulated":
            stim = realised[ctrl]
            response = {}
            for f, (val, unit) in realised[sid].items():
                s_val = stim[f][0]
                response[f] = max(s_val - val, 0.0)  # stimulated minus unstimulated, floored at 0
                truth += [{"sample_id": ctrl, "assay": "cytometry", "panel": panel, "feature": feat,
                           "value": x, "unit": unit, "flag": ""}
                          for feat, x in ((f, response[f]), (f"{f}_stimulated", s_val),
                                          (f"{f}_unstimulated", val))]
            ratio = response["IFNG_CD4"] / response["IL4_CD4"] if response["IL4_CD4"] > 0 else float("nan")
            truth.append({"sample_id": ctrl, "assay": "cytometry", "panel": panel, "feature": "IFNG_IL4_ratio",
                          "value": ratio, "unit": "ratio", "flag": ""})
    base = len(plan)
    controls = [(f"SS-{c[:-2]}", c) for c in FLUORS] + [("UNSTAINED", None)]
    for j, (sid, channel) in enumerate(controls):
        crng = np.random.default_rng([seed, K, base + j])
        if channel is None:
            ev, _ = simulate_events(crng, events, "unstained", TubeParams())
            write_tube(folder / f"{sid}.fcs", sid, "unstained", ev)
        else:
            write_tube(folder / f"{sid}.fcs", sid, f"SS-{channel}", single_stain_events(crng, events, channel))
        rows.append({"sample_id": sid, "patient_id": "", "visit": "", "assay": "cytometry",
                     "file": f"cytometry/{sid}.fcs", "panel": SURFACE_PANEL,
                     "tube": "unstained" if channel is None else "single_stain", "control_of": ""})
    channels, spill = true_spillover()
    truth += [{"sample_id": "SPILLOVER", "assay": "cytometry", "panel": "", "unit": "fraction", "flag": "",
               "feature": f"spillover:{src}->{dst}", "value": float(spill[a, b])}
              for a, src in enumerate(channels) for b, dst in enumerate(channels)]
    return rows, truth
