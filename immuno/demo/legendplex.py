"""Demo LEGENDplex plate: per-well FCS files of simulated beads with known concentrations.

One plate of the 13-plex proinflammatory chemokine panel, read on a CytoFLEX: 8 standard
levels (top 10000 pg/mL, 1:4 serial) in duplicate, two blanks (the kit's C0, assay
buffer) and every patient serum sample (one per patient and visit, run 1:2) in
duplicate. Each well is one FCS file whose events mimic the real file in
shared/data/real/chemokines/legendplex (K2-C07-A7.fcs): bead groups A and B at its
forward/side scatter positions, bead IDs at its APC (FL6-H) intensities, about 5 %
APC-negative events and 8 % debris and doublets, and each bead's PE (FL2-H) reporter
log-normal around the analyte's 5PL response to the well's concentration. The plate
layout (a long table) names the sample of each well; the true concentrations go to
truth.csv with the censoring the standard range implies.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from immuno.cytometry.io.fcs_write import write_fcs
from immuno.io import write_text

K_STREAM = 4  # its own stream: the other simulators' numbers stay as they were
PANEL = "legendplex_proinflammatory_chemokine_13"
PLATE_ID = "LEGENDPLEX_PLATE_01"
UNIT = "pg/mL"
TOP = 10000.0
STEP = 4.0
LEVELS = 8
SAMPLE_DILUTION = 2.0
#: (group, bead, label, feature, serum median pg/mL)
BEADS: list[tuple[str, str, str, str, float]] = [
    ("A", "A4", "IL-8", "CXCL8", 25.0),
    ("A", "A5", "IP-10", "CXCL10", 300.0),
    ("A", "A6", "Eotaxin (CCL11)", "CCL11", 120.0),
    ("A", "A7", "TARC", "CCL17", 250.0),
    ("A", "A8", "MCP-1", "CCL2", 400.0),
    ("A", "A10", "RANTES", "CCL5", 5000.0),
    ("B", "B2", "MIP-1a", "CCL3", 40.0),
    ("B", "B3", "MIG", "CXCL9", 600.0),
    ("B", "B4", "ENA-78", "CXCL5", 900.0),
    ("B", "B5", "MIP-3a", "CCL20", 20.0),
    ("B", "B6", "GRO-a", "CXCL1", 150.0),
    ("B", "B7", "I-TAC", "CXCL11", 100.0),
    ("B", "B9", "MIP-1b", "CCL4", 120.0),
]
#: log10 (FSC-A, SSC-A) centre, SDs and correlation of each group, read off the real file
GROUPS = {"A": ((5.45, 5.57), (0.045, 0.085), 0.45), "B": ((5.72, 5.87), (0.035, 0.06), 0.59)}
#: log10 FL6-H centre of each bead ID in the real file
DYE = {
    "A4": 3.83, "A5": 4.07, "A6": 4.35, "A7": 4.60, "A8": 4.75, "A10": 4.86,
    "B2": 3.11, "B3": 3.55, "B4": 3.92, "B5": 4.25, "B6": 4.55, "B7": 4.85, "B9": 5.20,
}  # fmt: skip
CHANNELS = ["FSC-H", "FSC-A", "SSC-H", "SSC-A", "FL2-H", "FL2-A", "FL6-H", "FL6-A", "Time"]
MARKERS = ["FSC-H", "FSC-A", "SSC-H", "SSC-A", "PE-H", "PE-A", "APC-H", "APC-A", "Time"]
EVENTS_PER_BEAD = 320
#: a bead's reporter spread from event to event (log-normal sigma, natural log)
REPORTER_SIGMA = 0.25


def curve_5pl(
    x: np.ndarray | float, a: float, b: float, c: float, d: float, g: float
) -> np.ndarray:
    """True reporter median of a bead at concentration ``x`` (pg/mL in the well)."""
    return d + (a - d) / (1.0 + (np.asarray(x, float) / c) ** b) ** g


def _layout(samples: list[str]) -> list[tuple[str, str, str, float, float, float]]:
    """(well, sample_name, role, level, expected pg/mL, dilution), acquisition order
    column-wise: standards top first in columns 1-2, blanks, then samples in duplicate."""
    wells = [f"{r}{c}" for c in range(1, 13) for r in "ABCDEFGH"]
    names: list[tuple[str, str, float, float, float]] = []
    for _rep in range(2):
        names += [
            (f"Standard{lv}", "standard", float(lv), TOP / STEP ** (lv - 1), math.nan)
            for lv in range(1, LEVELS + 1)
        ]
    names += [("Background0", "blank", math.nan, math.nan, math.nan)] * 2
    names += [(s, "unknown", math.nan, math.nan, SAMPLE_DILUTION) for s in samples for _ in (0, 1)]
    return [(wells[i], *names[i]) for i in range(len(names))]


def _well_events(rng: np.random.Generator, reporter: dict[str, float], order: int) -> np.ndarray:
    """One well's events: beads of both groups, APC-negative events, debris, doublets."""
    parts = []
    for group, bead, *_ in BEADS:
        n = int(rng.poisson(EVENTS_PER_BEAD))
        (mx, my), (sx, sy), rho = GROUPS[group]
        cov = [[sx**2, rho * sx * sy], [rho * sx * sy, sy**2]]
        scatter = rng.multivariate_normal([mx, my], cov, size=n)
        dye = DYE[bead] + 0.025 * rng.standard_normal(n)
        pe = reporter[bead] * np.exp(REPORTER_SIGMA * rng.standard_normal(n))
        parts.append(np.column_stack([scatter, dye, pe]))
    n_all = sum(len(p) for p in parts)
    for group in ("A", "B"):  # dye-negative events in each scatter group
        n = int(0.025 * n_all)
        (mx, my), (sx, sy), rho = GROUPS[group]
        cov = [[sx**2, rho * sx * sy], [rho * sx * sy, sy**2]]
        parts.append(
            np.column_stack(
                [
                    rng.multivariate_normal([mx, my], cov, size=n),
                    2.5 + 0.1 * rng.standard_normal(n),
                    10 ** rng.uniform(2.5, 5.0, n),
                ]
            )
        )
    n = int(0.06 * n_all)  # debris: small, spread
    parts.append(
        np.column_stack(
            [
                rng.uniform(4.5, 5.4, n),
                rng.uniform(4.3, 5.5, n),
                rng.uniform(2.2, 5.0, n),
                10 ** rng.uniform(2.3, 5.0, n),
            ]
        )
    )
    n = int(0.02 * n_all)  # doublets: larger than B
    parts.append(
        np.column_stack(
            [
                6.0 + 0.08 * rng.standard_normal(n),
                6.15 + 0.1 * rng.standard_normal(n),
                rng.uniform(3.0, 5.3, n),
                10 ** rng.uniform(3.0, 5.5, n),
            ]
        )
    )
    ev = np.vstack(parts)
    ev = ev[rng.permutation(len(ev))]
    fsc, ssc, dye = 10 ** ev[:, 0], 10 ** ev[:, 1], 10 ** ev[:, 2]
    pe = ev[:, 3]
    time = np.sort(rng.uniform(0, 36.0, len(ev))) + 0.0 * order
    return np.column_stack(
        [0.92 * fsc, fsc, 0.9 * ssc, ssc, pe, 1.25 * pe, dye, 1.5 * dye, time]
    ).astype(np.float32)


def simulate(
    out: Path, seed: int, patients: list[str], visits: list[str], events: int = 0
) -> tuple[list[dict], list[dict]]:
    """Write the LEGENDplex plate folder and its layout under ``out/chemokine/``.

    Returns
    -------
    (sheet rows, truth rows)
        Sheet rows (assay chemokine) name the plate folder and its layout relative to
        ``out``; truth rows hold every true serum concentration with the censoring flag the
        standard range implies.
    """
    del events  # cytometry only; a well's events follow the kit's beads
    rng = np.random.default_rng([seed, K_STREAM])
    samples = [f"{p}-{v}-SERUM" for p in patients for v in visits]
    curves = {
        bead: {
            "a": rng.uniform(300, 900),
            "b": rng.uniform(0.9, 1.25),
            "c": rng.uniform(1500, 6000),
            "d": rng.uniform(3.5e5, 7e5),
            "g": rng.uniform(0.8, 1.2),
        }
        for _g, bead, *_ in BEADS
    }
    effect = {p: rng.normal(0, 0.35, size=len(BEADS)) for p in patients}
    conc: dict[tuple[str, str], float] = {}
    for p in patients:
        for v in visits:
            for k, (*_, feat, med) in enumerate(BEADS):
                conc[(f"{p}-{v}-SERUM", feat)] = math.exp(
                    math.log(med) + effect[p][k] + rng.normal(0, 0.25)
                )
    n = len(samples)
    for k, (*_, feat, _med) in enumerate(BEADS):  # a few beyond the standards on purpose
        if n >= 3 and k % 3 == 0:
            conc[(samples[(k * 5) % n], feat)] = TOP * SAMPLE_DILUTION * rng.uniform(1.4, 2.5)
        if n >= 3 and k % 3 == 1:
            lowest = TOP / STEP ** (LEVELS - 1)
            conc[(samples[(k * 5 + 2) % n], feat)] = (
                lowest * SAMPLE_DILUTION * rng.uniform(0.1, 0.6)
            )
    folder = f"chemokine/{PLATE_ID}"
    lines = ["well,sample_name,role,standard_level,expected_conc,dilution"]
    for order, (well, name, role, level, expected, dilution) in enumerate(
        _layout(samples), start=1
    ):
        if role == "standard":
            x_in_well = {feat: expected for *_, feat, _m in BEADS}
        elif role == "blank":
            x_in_well = {feat: 0.0 for *_, feat, _m in BEADS}
        else:
            x_in_well = {feat: conc[(name, feat)] / SAMPLE_DILUTION for *_, feat, _m in BEADS}
        reporter = {
            bead: float(curve_5pl(x_in_well[feat], **curves[bead]))
            for _g, bead, _l, feat, _m in BEADS
        }
        events = _well_events(rng, reporter, order)
        keywords = {"$CYT": "CytoFLEX", "$BTIM": f"10:{order // 60:02d}:{order % 60:02d}"}
        write_fcs(out / folder / f"{PLATE_ID}-{well}.fcs", events, CHANNELS, MARKERS, keywords,
                  ranges=[8388608.0] * 8 + [900.0])  # fmt: skip
        cells = [
            "" if isinstance(x, float) and math.isnan(x) else f"{x:.12g}"
            for x in (level, expected, dilution)
        ]
        lines.append(",".join([well, name, role, *cells]))
    layout = f"chemokine/{PLATE_ID}_layout.csv"
    write_text("\n".join(lines) + "\n", out / layout)
    sheet = []
    truth = []
    lloq, uloq = TOP / STEP ** (LEVELS - 1) * SAMPLE_DILUTION, TOP * SAMPLE_DILUTION
    for s in samples:
        patient, visit = s.split("-")[:2]
        sheet.append(
            {"sample_id": s, "patient_id": patient, "visit": visit, "assay": "chemokine",
             "file": folder, "panel": PANEL, "plate": PLATE_ID, "sample_name": s,
             "layout": layout}
        )  # fmt: skip
        for *_, feat, _m in BEADS:
            value = conc[(s, feat)]
            flag = "<LLOQ" if value < lloq else (">ULOQ" if value > uloq else "")
            truth.append(
                {"sample_id": s, "assay": "chemokine", "panel": PANEL, "feature": feat,
                 "value": value, "unit": UNIT, "flag": flag}
            )  # fmt: skip
    return sheet, truth
