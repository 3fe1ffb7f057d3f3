"""The assay sections of the batch report, each built from the batch's result files only.

Tables are keyed by (panel, feature) with the unit from the measurement table, so two
panels that use one feature name show as two columns of two tables, never one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from immuno.contract.batch import visit_sort_key
from immuno.contract.measurements import censored_substitute, flag_words
from immuno.report.html import figure_png, file_png, fmt_number, table_html
from immuno.report.status import sample_status
from immuno.study.charts import trajectory_figure

ASSAY_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}


def cell_text(value: float, flag: str, lower: float, upper: float) -> str:
    """One value as shown: number, interval, and censoring or failure marks.

    A censored value shows the limit it lies beyond (``< 1.22`` or ``> 20000``), never a
    substitute; a value failing QC is marked with its flag words.
    """
    words = flag_words(flag)
    if "<LLOQ" in words and pd.isna(value):
        text = f"< {fmt_number(upper)} (<LLOQ)"
    elif ">ULOQ" in words and pd.isna(value):
        text = f"> {fmt_number(lower)} (>ULOQ)"
    elif pd.isna(value):
        text = "-"
    else:
        text = fmt_number(value)
        if pd.notna(lower) and pd.notna(upper):
            text += f" [{fmt_number(lower, 3)}, {fmt_number(upper, 3)}]"
    rest = [w for w in words if w not in ("<LLOQ", ">ULOQ", "detected")]
    if rest:
        text += " (" + ", ".join(rest) + ")"
    return text


def value_table(m: pd.DataFrame) -> pd.DataFrame:
    """Samples x features of one panel with :func:`cell_text` cells (headers carry units)."""
    m = m.assign(cell=[cell_text(*r) for r in zip(m.value, m.flag, m.lower, m.upper, strict=True)],
                 column=m.feature + " [" + m.unit + "]")
    t = m.pivot(index=["patient_id", "visit", "sample_id"], columns="column", values="cell").fillna("")
    t.columns.name = None
    order = sorted(t.index, key=lambda i: (i[0], visit_sort_key(i[1]), i[2]))
    return t.loc[order].reset_index()


def headline(m: pd.DataFrame) -> pd.DataFrame:
    """Rows of the headline features (per-population statistics, named
    ``<population>:<statistic>``, stay in the result files)."""
    own = m[~m.feature.str.contains(":", regex=False)]
    return own if len(own) else m


def trajectories(m: pd.DataFrame) -> str | None:
    """Per-patient values by visit for every headline feature of one panel (censored at
    their substitute, hollow); None when no patient has a value."""
    p = m[~m.control & m.qc_pass].copy()
    p["used"] = censored_substitute(p.value, p.flag, p.lower, p.upper)
    p["censored"] = p.value.isna() & p.used.notna()
    p = p[p.used.notna()]
    if p.empty:
        return None
    visits = sorted(set(p.visit), key=visit_sort_key)
    return figure_png(trajectory_figure(p, visits))


def plots_of(batch_dir: Path, assay: str) -> dict[str, Path]:
    """The plots an assay room wrote, by file stem."""
    folder = batch_dir / ASSAY_DIRS[assay] / "plots"
    return {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}


def _panels(m: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for panel, g in m.groupby("panel", sort=True):
        h = headline(g)
        out.append({"panel": panel, "table": table_html(value_table(h)), "trajectories": trajectories(h),
                    "n_samples": int(g.sample_id.nunique())})
    return out


def cytometry(m: pd.DataFrame, flags: pd.DataFrame, batch_dir: Path) -> dict[str, Any]:
    """Headline tables and trajectories per panel, and every sample's gating plot,
    samples with fail flags first, then warnings, then the rest."""
    plots = plots_of(batch_dir, "cytometry")
    samples = sorted(set(m.sample_id) | set(plots))
    entries = []
    rank = {"fail": 0, "warning": 1, "pass": 2}
    for s in samples:
        status, reasons = sample_status({s}, m, flags)
        entries.append({"sample": s, "status": status, "reasons": reasons,
                        "data": file_png(plots[s]) if s in plots else None})
    entries.sort(key=lambda e: (rank[e["status"]], e["sample"]))
    return {"panels": _panels(m), "gating": entries,
            "n_plots": sum(e["data"] is not None for e in entries),
            "missing_plots": [e["sample"] for e in entries if e["data"] is None]}


def chemokine(m: pd.DataFrame, metrics: pd.DataFrame, batch_dir: Path) -> dict[str, Any]:
    """Standard curves (R², excluded standards, limits, unit), per-analyte concentrations
    with censoring marks, kit controls and every curve plot."""
    folder = batch_dir / "chemokines"
    curves = pd.read_parquet(folder / "curves.parquet") if (folder / "curves.parquet").is_file() else pd.DataFrame()
    if len(curves):
        cols = [c for c in ("plate_id", "feature", "analyte", "model", "status", "r2", "n_levels", "n_excluded",
                            "excluded", "lloq", "uloq", "unit", "reason", "vendor_reproduced_fraction",
                            "vendor_agreement_median_rel_diff", "vendor_agreement_max_rel_diff") if c in curves.columns]
        curves = curves[cols].rename(columns={"r2": "R²", "n_levels": "standards", "n_excluded": "excluded (n)",
                                              "excluded": "excluded standards", "lloq": "LLOQ", "uloq": "ULOQ",
                                              "vendor_reproduced_fraction": "vendor results reproduced",
                                              "vendor_agreement_median_rel_diff": "vs vendor (median)",
                                              "vendor_agreement_max_rel_diff": "vs vendor (max)"})
        for c in ("R²",):
            curves[c] = curves[c].map(lambda v: fmt_number(v, 5))
        for c in ("LLOQ", "ULOQ", "vendor results reproduced", "vs vendor (median)", "vs vendor (max)"):
            if c in curves:
                curves[c] = curves[c].map(fmt_number)
    kit = metrics[(metrics.assay == "chemokine") & (metrics.check == "control_range")]
    kit = kit[["sample_id", "target", "value", "lower_limit", "upper_limit", "passed", "detail"]].rename(
        columns={"sample_id": "control", "target": "analyte"})
    plots = plots_of(batch_dir, "chemokine")
    return {"panels": _panels(m), "curves": table_html(curves) if len(curves) else "",
            "concentrations": [{"panel": p, "table": table_html(value_table(g))} for p, g in m.groupby("panel")],
            "kit": table_html(kit) if len(kit) else "",
            "plots": [{"name": k, "data": file_png(v)} for k, v in plots.items()]}


def chimerism(m: pd.DataFrame, flags: pd.DataFrame, batch_dir: Path) -> dict[str, Any]:
    """One row per biopsy and method: donor fraction with its 95 % interval, the LoD,
    the detection call, and the warning flags; then the room's plots."""
    rows = []
    frac = m[m.feature.str.startswith("donor_fraction") & ~m.feature.str.startswith("donor_fraction_lod")]
    for r in frac.sort_values(["patient_id", "sample_id", "feature"]).itertuples():
        lod_feature = r.feature.replace("donor_fraction", "donor_fraction_lod", 1)
        same = m[(m.sample_id == r.sample_id) & (m.panel == r.panel)]
        lod = same[same.feature == lod_feature]
        if lod.empty:  # one LoD for every donor of the biopsy
            lod = same[same.feature == "donor_fraction_lod"]
        words = flag_words(r.flag)
        warn = flags[(flags.sample_id == r.sample_id) & flags.severity.isin(["warning", "fail"])]
        rows.append({"patient": r.patient_id, "visit": r.visit, "sample": r.sample_id, "panel": r.panel,
                     "feature": r.feature,
                     f"donor fraction [{r.unit}]": fmt_number(r.value),
                     "95 % interval": f"[{fmt_number(r.lower, 3)}, {fmt_number(r.upper, 3)}]"
                                      if pd.notna(r.lower) else "",
                     "LoD": fmt_number(lod.value.iloc[0], 3) if len(lod) else "",
                     "call": "detected" if "detected" in words else "not detected" if "not_detected" in words
                             else ", ".join(words) or "-",
                     "QC": "pass" if r.qc_pass else "fail",
                     "flags": "; ".join(f"{f.severity}: {f.flag}" for f in warn.itertuples())})
    plots = plots_of(batch_dir, "chimerism")
    return {"table": table_html(pd.DataFrame(rows)) if rows else "",
            "plots": [{"name": k, "data": file_png(v)} for k, v in plots.items()]}
