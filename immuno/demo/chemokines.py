"""Demo chemokine plates: xPONENT CSV exports with known 5PL curves and true concentrations.

Each plate holds 8 standard levels (1:4 series) in duplicate, two blanks, two kit
controls in duplicate (with their lot range) and every patient sample (one per patient
and visit) in duplicate, acquired column-wise. A patient's visits stay on one plate; a
second plate is used only when more than 37 samples need a place. The net MFI of a well
follows the analyte's 5PL plus proportional and additive noise; the export carries the
Median, Net MFI, Count, Result, Units, Dilution Factor, Standard Expected Concentration,
Control Range Low/High and Analysis Coefficients blocks and ends with a CRC line, as
xPONENT writes them. The vendor Result is computed here from the written coefficients
with the xPONENT formula, independently of the analysis code.

The export carries three quirks met in real kit protocols (``quirks=True``, the default):
the standards are numbered from the lowest (``Standard1`` is the most dilute), the
expected concentrations and the control ranges are listed per reagent (``Reagent,<analytes>``
rows, xPONENT 3.1 style) rather than per well, and the coefficient rows are labelled
``Coefficient A`` .. ``Coefficient E`` (E the asymmetry).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from immuno.io import write_text

K_STREAM = 2
PANEL = "chemokine_demo"
UNIT = "pg/mL"
SAMPLE_DILUTION = 2.0  # plasma run 1:2, as kit inserts recommend
LEVELS = 8
STEP = 4.0
MAX_SAMPLES_PER_PLATE = 37

#: export label, feature (gene symbol), class, top standard (pg/mL in well), plasma median (pg/mL)
ANALYTES: list[tuple[str, str, str, float, float]] = [
    ("CXCL9/MIG", "CXCL9", "Th1", 10000.0, 1500.0),
    ("CXCL10/IP-10", "CXCL10", "Th1", 10000.0, 800.0),
    ("CXCL11/I-TAC", "CXCL11", "Th1", 5000.0, 150.0),
    ("CCL17/TARC", "CCL17", "Th2", 5000.0, 300.0),
    ("CCL22/MDC", "CCL22", "Th2", 10000.0, 900.0),
    ("CCL11/Eotaxin", "CCL11", "Th2", 2500.0, 120.0),
    ("IL-10", "IL10", "anti_inflammatory", 1000.0, 15.0),
    ("IL-1RA", "IL1RN", "anti_inflammatory", 10000.0, 600.0),
]
#: log-scale visit effects by class: the Th1 burst of acute SJS/TEN fades, IL-10 rises after MSC
VISIT_EFFECT = {"Th1": {"D0": 0.5, "D10": 0.0, "M1": -0.5},
                "Th2": {"D0": -0.2, "D10": 0.0, "M1": 0.2},
                "anti_inflammatory": {"D0": 0.0, "D10": 0.4, "M1": 0.0}}


@dataclass
class SimulatedPlate:
    """One simulated plate: the export text and the simulated per-well values."""

    plate_id: str
    text: str
    wells: pd.DataFrame  # well, order, sample_name, role, analyte, mfi, net_mfi, bead_count, ...
    curves: pd.DataFrame  # analyte, a, b, c, d, g (true net-MFI curve), v_a .. v_g (the vendor's fit)


def curve_5pl(x: np.ndarray, a: float, b: float, c: float, d: float, g: float) -> np.ndarray:
    """True response of the simulated assay."""
    return d + (a - d) / (1.0 + (np.asarray(x, float) / c) ** b) ** g


def xponent_result(y: float, A: float, B: float, C: float, D: float, F: float, df: float) -> str:
    """The vendor Result cell, written the way xPONENT's formula reads:
    y = A + (B - A) / (1 + (x / C) ** D) ** F solved for x, times the dilution factor."""
    lo, hi = min(A, B), max(A, B)
    if not math.isfinite(y) or y <= lo:
        return "OOR <"
    if y >= hi:
        return "OOR >"
    x = C * (((B - A) / (y - A)) ** (1.0 / F) - 1.0) ** (1.0 / D)
    return f"{x * df:.12g}"


def _layout(n_samples: int, from_lowest: bool = True) -> list[tuple[str, str, str, float]]:
    """(well, sample role, name, level) in acquisition order (column-wise); level 1 is the
    most concentrated standard, the name's number counts from the lowest when asked."""
    wells = [f"{r}{c}" for c in range(1, 13) for r in "ABCDEFGH"]
    names: list[tuple[str, str, float]] = []
    for rep in range(2):  # standards down columns 1 and 2, most concentrated first
        names += [("standard", f"Standard{LEVELS + 1 - lv if from_lowest else lv}", float(lv))
                  for lv in range(1, LEVELS + 1)]
        del rep
    names += [("blank", "Background0", math.nan)] * 2
    names += [("control", "Control1", math.nan)] * 2 + [("control", "Control2", math.nan)] * 2
    names += [("unknown", f"#{i}", math.nan) for i in range(n_samples) for _ in range(2)]
    return [(wells[i], *names[i]) for i in range(len(names))]


def simulate_plate(rng: np.random.Generator, plate_id: str, samples: list[str],
                   true_conc: dict[tuple[str, str], float],
                   analytes: list[tuple[str, str, str, float, float]] | None = None,
                   quirks: bool = True) -> SimulatedPlate:
    """Simulate one plate export for ``samples`` with true plasma concentrations
    ``true_conc[(sample, feature)]`` in pg/mL (``analytes`` defaults to :data:`ANALYTES`).
    ``quirks`` writes the kit-protocol export (standards numbered from the lowest,
    per-reagent expected concentrations and control ranges, ``Coefficient A..E`` rows);
    without it the plain per-well export."""
    curves, rows = [], []
    for label, feature, _cls, top, _med in analytes or ANALYTES:
        curves.append({"analyte": label, "feature": feature, "a": 0.0, "b": rng.uniform(0.72, 0.85),
                       "c": top * rng.uniform(0.4, 0.8), "d": rng.uniform(20000, 32000),
                       "g": rng.uniform(0.75, 1.35), "bg": rng.uniform(12, 40), "top": top})
    layout = _layout(len(samples), from_lowest=quirks)
    for order, (well, role, name, level) in enumerate(layout, start=1):
        sample = samples[int(name[1:])] if role == "unknown" else name
        for cv in curves:
            top = cv["top"]
            df = 1.0
            if role == "standard":
                x = top / STEP ** (level - 1)
            elif role == "blank":
                x = 0.0
            elif role == "control":
                x = top / (20.0 if name == "Control1" else 300.0)
            else:
                df = SAMPLE_DILUTION
                x = true_conc[(sample, cv["feature"])] / df
            signal = curve_5pl(x, cv["a"], cv["b"], cv["c"], cv["d"], cv["g"])
            mfi = cv["bg"] + signal * (1 + 0.035 * rng.standard_normal()) + 1.5 * rng.standard_normal()
            rows.append({"well": well, "order": order, "sample_name": sample, "role": role,
                         "standard_level": level, "analyte": cv["analyte"], "feature": cv["feature"],
                         "x_in_well": x, "dilution": df, "mfi": round(max(mfi, 1.0), 1),
                         "bead_count": int(rng.poisson(95))})
    wells = pd.DataFrame(rows)
    # a few wells with few beads, as happens on a real plate (never on standards)
    unknown = wells.index[wells["role"] == "unknown"].to_numpy()
    low = rng.choice(unknown, size=min(5, len(unknown)), replace=False)
    wells.loc[low[:3], "bead_count"] = rng.integers(38, 49, size=len(low[:3]))
    wells.loc[low[3:], "bead_count"] = rng.integers(20, 34, size=len(low[3:]))
    blank_mean = wells[wells["role"] == "blank"].groupby("analyte")["mfi"].mean()
    wells["net_mfi"] = (wells["mfi"] - wells["analyte"].map(blank_mean)).round(2)
    cdf = _vendor_fit(pd.DataFrame(curves), wells)
    return SimulatedPlate(plate_id, _export(plate_id, wells, cdf, quirks), wells, cdf)


def _vendor_fit(curves: pd.DataFrame, wells: pd.DataFrame) -> pd.DataFrame:
    """The instrument software's own curve: a 1/y^2-weighted 5PL fitted to the noisy
    standards (scipy, from the true curve), as xPONENT fits them - not the true curve,
    which no vendor knows. Columns ``v_a`` .. ``v_g``; the true curve is kept beside."""
    out = curves.copy()
    for k in "abcdg":
        out[f"v_{k}"] = out[k]
    for i, cv in out.iterrows():
        std = wells[(wells["role"] == "standard") & (wells["analyte"] == cv["analyte"])]
        x, y = std["x_in_well"].to_numpy(float), std["net_mfi"].to_numpy(float)
        try:
            with np.errstate(all="ignore"):
                fit, _ = curve_fit(curve_5pl, x, y, p0=[cv["a"], cv["b"], cv["c"], cv["d"], cv["g"]],
                                   sigma=np.maximum(np.abs(y), 1.0), maxfev=20000)
        except (RuntimeError, ValueError):
            continue  # the software keeps its previous curve; here, the true one
        if np.all(np.isfinite(fit)) and fit[1] > 0 and fit[2] > 0 and fit[4] > 0:
            for k, v in zip("abcdg", fit, strict=True):
                out.loc[i, f"v_{k}"] = float(v)
    return out


def _q(*cells: object) -> str:
    return ",".join(f'"{c}"' for c in cells)


def _per_reagent(lines: list[str], name: str, labels: list[str], reagents: list[str], value) -> None:
    """A block listed per reagent (xPONENT 3.1 kit protocols): one row per standard or control."""
    lines.append(_q("DataType:", name))
    lines.append(_q("Reagent", *labels))
    for reagent in reagents:
        lines.append(_q(reagent, *[value(reagent, a) for a in labels]))
    lines.append("")


def _export(plate_id: str, wells: pd.DataFrame, curves: pd.DataFrame, quirks: bool = True) -> str:
    labels = curves["analyte"].tolist()
    lines = [
        _q("Program", "xPONENT", "", "FLEXMAP 3D"), _q("Build", "4.3.229.0"),
        _q("Date", "11/26/2026", "10:00 AM"), "",
        _q("SN", "FM3DD00000001"), _q("Batch", plate_id), _q("Version", "1"), _q("Operator", ""),
        _q("ComputerName", ""), _q("Country Code", "409"),
        _q("ProtocolName", "LYSYME chemokine 8-plex"), _q("ProtocolVersion", "1"),
        _q("SampleVolume", "50 uL"), _q("DDGate", "7500 to 15000"),
        _q("BatchStartTime", "11/26/2026 10:00:00 AM"), _q("BatchStopTime", "11/26/2026 11:02:00 AM"),
        _q("ProtocolPlate", "Name", "Current 96-well plate", "Type", "96", "Plates", "1"),
        _q("ProtocolMicrosphere", "Map", "FlexMAP 3D Map", "Type", "MagPlex", "Count", len(labels)),
        _q("ProtocolAnalysis", "On"), "", "",
        _q("Samples", wells["well"].nunique(), "Min Events", "50", "Per Bead"), "", _q("Results"), "",
    ]
    by_well = wells.pivot_table(index=["order", "well", "sample_name"], columns="analyte",
                                values=["mfi", "net_mfi", "bead_count"], aggfunc="first").sort_index()
    meta = wells.drop_duplicates("well").set_index("well")
    cv = curves.set_index("analyte")

    def block(name: str, cell) -> None:
        lines.append(_q("DataType:", name))
        lines.append(_q("Location", "Sample", *labels, "Total Events"))
        for (order, well, sample), r in by_well.iterrows():
            cells = [cell(r, a, well) for a in labels]
            if any(c is not None for c in cells):
                total = int(sum(r[("bead_count", a)] for a in labels)) + 40
                lines.append(_q(f"{order}(1,{well})", sample, *["" if c is None else c for c in cells], total))
        lines.append("")

    block("Median", lambda r, a, w: f"{r[('mfi', a)]:.10g}")
    block("Net MFI", lambda r, a, w: f"{r[('net_mfi', a)]:.10g}")
    block("Count", lambda r, a, w: f"{int(r[('bead_count', a)])}")

    def result(r, a, w):
        c = cv.loc[a]
        return xponent_result(float(r[("net_mfi", a)]), c["v_d"], c["v_a"], c["v_c"], c["v_b"], c["v_g"],
                              float(meta.loc[w, "dilution"]))

    block("Result", result)
    top = cv["top"]
    if quirks:
        std = meta[meta["role"] == "standard"].drop_duplicates("sample_name")
        level_of = dict(zip(std["sample_name"], std["standard_level"], strict=True))
        reagents = sorted(level_of, key=lambda n: int(n.removeprefix("Standard")))
        _per_reagent(lines, "Standard Expected Concentration", labels, reagents,
                     lambda n, a: f"{top[a] / STEP ** (level_of[n] - 1):.6g}")
        for side, f in (("Low", 0.7), ("High", 1.3)):
            _per_reagent(lines, f"Control Range - {side}", labels, ["Control1", "Control2"],
                         lambda n, a, f=f: f"{f * top[a] / (20.0 if n == 'Control1' else 300.0):.6g}")
    else:
        block("Standard Expected Concentration", lambda r, a, w: (
            f"{top[a] / STEP ** (meta.loc[w, 'standard_level'] - 1):.6g}" if meta.loc[w, "role"] == "standard" else None))
        for side, f in (("Low", 0.7), ("High", 1.3)):
            block(f"Control Range {side}", lambda r, a, w, f=f: (
                f"{f * top[a] / (20.0 if meta.loc[w, 'sample_name'] == 'Control1' else 300.0):.6g}"
                if meta.loc[w, "role"] == "control" else None))
    lines += [_q("DataType:", "Units"), _q("Analyte:", *labels),
              _q("BeadID:", *[12 + 7 * i for i in range(len(labels))]), _q("Units:", *[UNIT] * len(labels)), ""]
    lines += [_q("DataType:", "Dilution Factor"), _q("Location", "Sample", "Dilution Factor")]
    for well, r in meta.sort_values("order").iterrows():
        lines.append(_q(f"{r['order']}(1,{well})", r["sample_name"], f"{r['dilution']:g}"))
    lines += ["", _q("DataType:", "Analysis Types"), _q("Analyte:", *labels),
              _q("AnalysisType", *["Logistic 5P Weighted"] * len(labels)), ""]
    lines += [_q("DataType:", "Analysis Coefficients"), _q("Analyte:", *labels)]
    asym = "Coefficient E" if quirks else "F"
    for key, col in (("A", "v_d"), ("B", "v_a"), ("C", "v_c"), ("D", "v_b"), (asym, "v_g")):
        label = f"Coefficient {key}" if quirks and len(key) == 1 else key
        lines.append(_q(label, *[f"{cv.loc[a, col]:.12g}" for a in labels]))
    lines += ["", _q("DataType:", "Audit Logs"), _q("UserId", "Date", "Message"), "",
              _q("DataType:", "Warnings/Errors"), _q("Location", "Status", "Message"), ""]
    body = "\n".join(lines) + "\n"
    return body + f"-- CRC --\nCRC32: {zlib.crc32(body.encode()):08X}\n"


def simulate(out: Path, seed: int, patients: list[str], visits: list[str],
             events: int) -> tuple[list[dict], list[dict]]:
    """Write the demo chemokine plate(s) under ``out/chemokine/``.

    Returns
    -------
    (sheet rows, truth rows)
        Sheet rows name the plate file relative to ``out``; truth rows hold every true
        concentration (with the censoring flag the standard range implies) and the true
        Th1/Th2 chemokine scores and ratio.
    """
    del events  # cytometry only
    rng = np.random.default_rng([seed, K_STREAM])
    per_plate = max(1, MAX_SAMPLES_PER_PLATE // max(1, len(visits)))
    groups = [patients[i:i + per_plate] for i in range(0, len(patients), per_plate)]
    sheet, truth = [], []
    for p_idx, group in enumerate(groups, start=1):
        plate_id = f"CHEMO_PLATE_{p_idx:02d}"
        samples = [f"{p}-{v}-PLASMA" for p in group for v in visits]
        patient_effect = {p: rng.normal(0, 0.35, size=len(ANALYTES)) for p in group}
        conc: dict[tuple[str, str], float] = {}
        for p in group:
            for v in visits:
                for k, (_label, feat, cls, _top, med) in enumerate(ANALYTES):
                    log_c = math.log(med) + patient_effect[p][k] + VISIT_EFFECT[cls].get(v, 0.0) + rng.normal(0, 0.25)
                    conc[(f"{p}-{v}-PLASMA", feat)] = math.exp(log_c)
        n = len(samples)
        for k, (_label, feat, _cls, top, _med) in enumerate(ANALYTES):
            if n >= 3 and k % 2 == 0:  # some samples beyond the standard range on purpose
                conc[(samples[(k * 5) % n], feat)] = top * SAMPLE_DILUTION * rng.uniform(1.4, 2.5)
            if n >= 3 and k % 2 == 1:
                lowest = top / STEP ** (LEVELS - 1)
                conc[(samples[(k * 5 + 2) % n], feat)] = lowest * SAMPLE_DILUTION * rng.uniform(0.1, 0.6)
        plate = simulate_plate(rng, plate_id, samples, conc)
        rel = f"chemokine/{plate_id}.csv"
        write_text(plate.text, out / rel)
        for s in samples:
            patient, visit = s.split("-")[:2]
            sheet.append({"sample_id": s, "patient_id": patient, "visit": visit, "assay": "chemokine",
                          "file": rel, "panel": PANEL, "plate": plate_id, "sample_name": s})
            truth += _truth_rows(s, conc)
    return sheet, truth


def _truth_rows(sample: str, conc: dict[tuple[str, str], float]) -> list[dict]:
    """True analyte values with the censoring their standard range implies, and the true
    scores by the pipeline's documented rule: censored analytes at LLOQ/2 (below) or ULOQ
    (above), the flag naming them; the strict scores only when no analyte is censored."""
    rows, subst, strict, censored = [], {}, {}, {}
    for _label, feat, cls, top, _med in ANALYTES:
        value = conc[(sample, feat)]
        lloq, uloq = top / STEP ** (LEVELS - 1) * SAMPLE_DILUTION, top * SAMPLE_DILUTION
        flag = "<LLOQ" if value < lloq else (">ULOQ" if value > uloq else "")
        rows.append({"sample_id": sample, "assay": "chemokine", "panel": PANEL, "feature": feat,
                     "value": value, "unit": UNIT, "flag": flag})
        subst.setdefault(cls, []).append(lloq / 2 if flag == "<LLOQ" else (uloq if flag == ">ULOQ" else value))
        strict.setdefault(cls, []).append(value)
        if flag:
            censored.setdefault(cls, []).append(feat)

    def gm(values: list[float]) -> float:
        return float(np.exp(np.mean(np.log(values))))

    def detail(word: str, items: list[str]) -> str:
        return f"{word}:{'+'.join(sorted(items))}" if items else ""

    th = {cls: (gm(subst[cls]), gm(strict[cls]), censored.get(cls, [])) for cls in ("Th1", "Th2")}
    both = th["Th1"][2] + th["Th2"][2]
    for name, cls in (("Th1_chemokine_score", "Th1"), ("Th2_chemokine_score", "Th2")):
        value, exact, cens = th[cls]
        rows.append({"sample_id": sample, "assay": "chemokine", "panel": PANEL, "feature": name, "value": value,
                     "unit": UNIT, "flag": detail("censored_inputs", cens)})
        rows.append({"sample_id": sample, "assay": "chemokine", "panel": PANEL, "feature": f"{name}_strict",
                     "value": math.nan if cens else exact, "unit": UNIT,
                     "flag": detail("incomplete", cens)})
    rows.append({"sample_id": sample, "assay": "chemokine", "panel": PANEL, "feature": "Th1_Th2_chemokine_ratio",
                 "value": th["Th1"][0] / th["Th2"][0], "unit": "ratio",
                 "flag": detail("censored_inputs", both)})
    rows.append({"sample_id": sample, "assay": "chemokine", "panel": PANEL, "feature": "Th1_Th2_chemokine_ratio_strict",
                 "value": math.nan if both else th["Th1"][1] / th["Th2"][1], "unit": "ratio",
                 "flag": detail("incomplete", both)})
    return rows
