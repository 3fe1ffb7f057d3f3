"""A batch's chemokine plates: read, quantify, derive scores and write the room's outputs.

Outputs under the room folder (``results/<batch>/chemokines/``):
``chemokines_measurements.parquet`` (docs/architecture.md, the measurement table), ``qc_metrics.parquet``,
``qc_flags.parquet``, ``wells.parquet`` (the ingested long table), ``curves.parquet``
(one row per plate and analyte: status, coefficients, R^2, LLOQ/ULOQ, the vendor's
curve and the agreement with it), ``standards.parquet`` (per standard level recovery),
``samples.parquet`` (per sample and analyte, with the extrapolated value of censored
ones), ``concentrations.h5ad`` and ``plots/``. A plate that cannot be read fails its own
samples (reason in the QC flags); the other plates finish.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from immuno.chemokines.plate import PlateData
from immuno.chemokines.plots import plot_curve
from immuno.chemokines.qpcr import efficiency_from_standards, relative_expression
from immuno.chemokines.quantify import PlateResult, analyte_map, quantify_plate
from immuno.chemokines.readers import read_plate
from immuno.chemokines.westgard import levey_jennings
from immuno.errors import UserError
from immuno.io import sha256_file, write_h5ad, write_parquet
from immuno.measurements import measurement_table
from immuno.qc import flags_table, metrics_table

ASSAY = "chemokine"
FLAG_CODES = {"": 0, "<LLOQ": 1, ">ULOQ": 2, "curve_failed": 3, "no_wells": 4, "failed": 5}


def derived_scores(values: pd.DataFrame, panel: Any) -> list[dict[str, Any]]:
    """Th1/Th2 chemokine scores (geometric mean of the class's analytes) and their ratio.

    ``values`` has sample_id, feature, class, value (NaN when censored or failed). A
    score whose inputs are not all quantified has no number (flag ``incomplete``): a
    censored value is never silently replaced.
    """
    scores = dict(panel.get("scores", {})) if panel is not None else {}
    rows: list[dict[str, Any]] = []
    unit = panel.get("unit", "pg/mL") if panel is not None else "pg/mL"
    for sample, sv in values.groupby("sample_id", sort=True):
        got: dict[str, float] = {}
        for name, cls in scores.items():
            v = sv.loc[sv["class"] == cls, "value"].to_numpy(dtype=float)
            ok = len(v) > 0 and bool(np.all(np.isfinite(v) & (v > 0)))
            got[name] = float(np.exp(np.mean(np.log(v)))) if ok else math.nan
            rows.append({"sample_id": sample, "feature": name, "value": got[name], "unit": unit,
                         "flag": "" if ok else "incomplete", "qc_pass": ok})
        if {"Th1_chemokine_score", "Th2_chemokine_score"} <= set(got):
            ratio = got["Th1_chemokine_score"] / got["Th2_chemokine_score"]
            ok = math.isfinite(ratio)
            rows.append({"sample_id": sample, "feature": "Th1_Th2_chemokine_ratio", "value": ratio if ok else math.nan,
                         "unit": "ratio", "flag": "" if ok else "incomplete", "qc_pass": ok})
    return rows


def _qpcr_rows(plate: PlateData, panel: Any) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    spec = dict(panel.get("qpcr", {})) if panel is not None else {}
    if not spec.get("reference_genes"):
        raise UserError.single(f"panel {getattr(panel, 'name', '?')}", "a qPCR run needs 'qpcr: reference_genes' in its panel")
    eff: dict[str, float] = {}
    metrics: list[dict] = []
    if spec.get("efficiency", "auto") == "auto":
        table = efficiency_from_standards(plate.wells)
        for r in table.itertuples():
            ok = 90.0 <= r.efficiency <= 110.0 and r.r2 >= 0.98
            metrics.append({"check": "qpcr_efficiency", "target": r.target, "value": r.efficiency,
                            "lower_limit": 90.0, "upper_limit": 110.0, "passed": ok,
                            "detail": f"slope {r.slope:.3f}, R^2 {r.r2:.4f}, {r.n_levels} levels"})
            eff[r.target] = r.amplification
    rules = {k: spec[k] for k in ("max_replicate_spread", "ntc_min_cq") if k in spec}
    try:
        table, m, flags = relative_expression(plate.wells, list(spec["reference_genes"]), spec.get("calibrator"), eff, rules)
    except (ValueError, KeyError) as exc:
        raise UserError.single(plate.plate_id, f"cannot quantify the qPCR run: {exc}") from None
    names = analyte_map(plate.analytes, panel)
    table["feature"] = table["target"].map(lambda t: names[t]["feature"])
    table["in_panel"] = table["target"].map(lambda t: names[t]["in_panel"] == "yes")
    table["class"] = table["target"].map(lambda t: names[t]["class"])
    table["unit"] = "relative expression"
    table["flag"] = ""
    table["qc_pass"] = True
    return table, metrics + m, flags


def quantify_file(path: str | Path, panel: Any = None, layout: str | Path | None = None) -> tuple[PlateData, PlateResult | pd.DataFrame, list[dict], list[dict]]:
    """Read and quantify one plate export on its own (no batch).

    Returns
    -------
    (plate, result, metrics, flags)
        ``result`` is a :class:`PlateResult` for multiplex plates and the relative
        expression table for qPCR runs.
    """
    plate = read_plate(path, layout)
    if plate.kind == "qpcr":
        table, metrics, flags = _qpcr_rows(plate, panel)
        return plate, table, metrics, flags
    res = quantify_plate(plate, panel)
    return plate, res, res.metrics, res.flags


def process_batch(batch: Any, out_dir: str | Path, history: str | Path | None = None,
                  plots: bool = True) -> pd.DataFrame:
    """Quantify every chemokine plate of a batch and write the room's outputs.

    Parameters
    ----------
    batch
        A validated :class:`immuno.batch.Batch`.
    out_dir
        The room folder, e.g. ``results/<batch>/chemokines``.
    history
        Optional Parquet table of earlier plates' values (plate_id, check, target,
        value) used as the Levey-Jennings guide set.
    plots
        Write one curve plot per plate and analyte.

    Returns
    -------
    pandas.DataFrame
        The measurement rows written.
    """
    out = Path(out_dir)
    rows = batch.rows(ASSAY).copy()
    for col in ("layout", "sample_name", "panel"):
        if col not in rows.columns:
            rows[col] = ""
    meas: list[dict] = []
    metrics: list[dict] = []
    flags: list[dict] = []
    wells_all, curves_all, std_all, samples_all, lj = [], [], [], [], []
    detail: dict[tuple[str, str], dict[str, Any]] = {}
    for (file, layout, panel_name), group in rows.groupby(["file", "layout", "panel"], sort=True):
        panel = batch.panels.get(panel_name)
        sheet = group.assign(sample_name=group["sample_name"].where(group["sample_name"] != "", group["sample_id"]))
        tag = {"panel": panel_name}
        try:
            plate, result, m, f = quantify_file(batch.root / file, panel, batch.root / layout if layout else None)
        except (UserError, ValueError) as exc:  # a malformed export fails its own samples only
            reason = "; ".join(str(p) for p in exc.problems) if isinstance(exc, UserError) else f"{file}: {exc}"
            for r in sheet.itertuples():
                flags.append({"sample_id": r.sample_id, "target": "", "flag": "file_failed", "severity": "fail",
                              "reason": reason, **tag})
                for a in (panel.get("analytes", []) if panel is not None else []):
                    meas.append({"sample_id": r.sample_id, "patient_id": r.patient_id, "visit": r.visit,
                                 "panel": panel_name, "feature": a["feature"], "value": math.nan,
                                 "unit": panel.get("unit", "pg/mL"), "flag": "failed", "qc_pass": False})
            continue
        ident = _identifier(plate, sheet)
        metrics += [{**x, "sample_id": ident(x.get("sample_id", "")), **tag} for x in m]
        flags += [{**x, "sample_id": ident(x.get("sample_id", "")), **tag} for x in f]
        listed = set(sheet["sample_name"])
        shown = {n: (n if n in listed else ident(n)) for n in plate.wells["sample_name"].unique()}
        ids = {n: (ident(n) if n in listed else "") for n in shown}
        wells_all.append(plate.wells.assign(sample_name=plate.wells["sample_name"].map(shown),
                                            sample_id=plate.wells["sample_name"].map(ids), file=file))
        if isinstance(result, PlateResult):
            curves_all.append(result.curves.assign(panel=panel_name))
            if len(result.standards):
                std_all.append(result.standards)
            table = result.samples
            lj += [{"plate_id": plate.plate_id, "check": "curve_ec50", "target": c.feature, "value": c.ec50}
                   for c in result.curves.itertuples() if c.status == "ok"]
            ctrl = table[table["role"] == "control"] if len(table) else table
            lj += [{"plate_id": plate.plate_id, "check": f"control_{c.sample_name}", "target": c.feature,
                    "value": c.value if math.isfinite(c.value) else c.extrapolated} for c in ctrl.itertuples()]
            if plots:
                write_curve_plots(result, plate, out / "plots")
        else:
            table = result.assign(plate_id=plate.plate_id, role="unknown")
        present = set(table["sample_name"]) if len(table) else set()
        for r in sheet.itertuples():
            if r.sample_name not in present:
                flags.append({"sample_id": r.sample_id, "target": "", "flag": "sample_not_on_plate", "severity": "fail",
                              "reason": f"sample name {r.sample_name!r} not found in {file}", **tag})
                continue
            st = table[table["sample_name"] == r.sample_name]
            samples_all.append(st.assign(sample_id=r.sample_id, patient_id=r.patient_id, visit=r.visit, panel=panel_name))
            for s in st.to_dict("records"):
                if not s.get("in_panel", True):
                    continue  # e.g. a monitoring bead region: kept in samples.parquet only
                lower, upper = s.get("lower", math.nan), s.get("upper", math.nan)
                if s["flag"] == "<LLOQ":
                    upper = s["lloq"]  # censored: the value lies below LLOQ
                elif s["flag"] == ">ULOQ":
                    lower = s["uloq"]
                meas.append({"sample_id": r.sample_id, "patient_id": r.patient_id, "visit": r.visit,
                             "panel": panel_name, "feature": s["feature"], "value": s["value"], "unit": s["unit"],
                             "lower": lower, "upper": upper, "flag": s["flag"], "qc_pass": bool(s["qc_pass"])})
                detail[(r.sample_id, s["feature"])] = {"class": s.get("class", "")}
    # derived scores per sample, per panel
    mt = pd.DataFrame(meas)
    if len(mt):
        mt["class"] = [detail.get((a, b), {}).get("class", "") for a, b in zip(mt["sample_id"], mt["feature"], strict=True)]
        for panel_name, pm in mt.groupby("panel"):
            panel = batch.panels.get(panel_name)
            info = pm.drop_duplicates("sample_id").set_index("sample_id")
            for d in derived_scores(pm, panel):
                meas.append({**d, "patient_id": info.loc[d["sample_id"], "patient_id"],
                             "visit": info.loc[d["sample_id"], "visit"], "panel": panel_name})
    if lj:
        hist = pd.read_parquet(history) if history else None
        m, f = levey_jennings(pd.DataFrame(lj), hist)
        metrics += m
        flags += f
    bid = batch.batch_id
    table = measurement_table([{**{k: v for k, v in x.items() if k != "class"}, "batch_id": bid, "assay": ASSAY} for x in meas]) if meas else measurement_table([])
    for x in metrics:
        x.setdefault("panel", "")
    write_parquet(table, out / "chemokines_measurements.parquet")
    write_parquet(metrics_table([{**x, "batch_id": bid, "assay": ASSAY} for x in metrics]), out / "qc_metrics.parquet")
    write_parquet(flags_table([{**x, "batch_id": bid, "assay": ASSAY} for x in flags]), out / "qc_flags.parquet")
    _frame(wells_all, out / "wells.parquet")
    _frame(curves_all, out / "curves.parquet")
    _frame(std_all, out / "standards.parquet")
    samples = _frame(samples_all, out / "samples.parquet")
    write_h5ad(concentrations_anndata(samples, bid, {str(f): sha256_file(batch.root / f) for f in sorted(set(rows["file"]))},
                                      {n: p.sha256 for n, p in batch.panels.items() if p.assay == ASSAY}),
               out / "concentrations.h5ad")
    return table


def _identifier(plate: PlateData, sheet: pd.DataFrame):
    """Map a sample name in the export to what may leave the batch: the sheet's
    sample_id for listed samples, the kit's names for standards/controls/blanks, and
    ``unlisted`` for any other sample on the plate (its name could identify a person)."""
    to_id = dict(zip(sheet["sample_name"], sheet["sample_id"], strict=True))
    role = dict(zip(plate.wells["sample_name"], plate.wells["role"], strict=False))

    def ident(name: str) -> str:
        if not name or name in to_id.values():
            return name
        if name in to_id:
            return to_id[name]
        return "unlisted" if role.get(name, "unknown") in ("unknown", "ntc", "nac") else name

    return ident


def _frame(parts: list[pd.DataFrame], path: Path) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype(str)
    write_parquet(df, path)
    return df


def write_curve_plots(result: PlateResult, plate: PlateData, folder: Path) -> None:
    """One PNG per analyte of a quantified plate: standards, fit, samples, LLOQ/ULOQ."""
    for analyte, curve in result.fitted.items():
        feat = result.curves.loc[result.curves["analyte"] == analyte, "feature"].iloc[0]
        std = plate.wells[(plate.wells["analyte"] == analyte) & (plate.wells["role"] == "standard")]
        smp = result.samples[result.samples["analyte"] == analyte] if len(result.samples) else result.samples
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{plate.plate_id}_{feat}")
        plot_curve(curve, std, smp, folder / f"{safe}.png", title=f"{plate.plate_id} - {feat}")


def concentrations_anndata(samples: pd.DataFrame, batch_id: str, files: dict[str, str],
                           panels: dict[str, str]) -> ad.AnnData:
    """obs = samples, var = analytes (features); X = value (NaN when censored or failed);
    layers ``mean_net_mfi``, ``extrapolated`` and ``flag`` (codes in ``uns['flag_codes']``)."""
    if samples.empty:
        adata = ad.AnnData(np.zeros((0, 0), dtype=np.float64))
    else:
        s = samples.copy()
        for col in ("mean_net_mfi", "extrapolated"):
            if col not in s.columns:
                s[col] = math.nan
        s["flag_code"] = s["flag"].map(FLAG_CODES).fillna(FLAG_CODES["failed"]).astype(float)
        obs = s.drop_duplicates("sample_id").set_index("sample_id")[["patient_id", "visit", "plate_id", "panel"]].sort_index()
        obs = obs.astype(str).assign(batch_id=batch_id)
        feats = sorted(s["feature"].unique())

        def layer(col: str) -> np.ndarray:
            wide = s.pivot_table(index="sample_id", columns="feature", values=col, aggfunc="first", dropna=False)
            return wide.reindex(index=obs.index, columns=feats).to_numpy(dtype=np.float64)

        units = s.drop_duplicates("feature").set_index("feature")["unit"].reindex(feats).astype(str)
        adata = ad.AnnData(X=layer("value"), obs=obs, var=pd.DataFrame({"unit": units.to_numpy()}, index=feats))
        adata.layers["mean_net_mfi"] = layer("mean_net_mfi")
        adata.layers["extrapolated"] = layer("extrapolated")
        adata.layers["flag"] = layer("flag_code")
    adata.uns["flag_codes"] = {k or "none": v for k, v in FLAG_CODES.items()}
    # h5 group keys cannot hold '/', so files are stored as parallel lists
    adata.uns["provenance"] = {"assay": ASSAY, "batch_id": batch_id, "input_files": list(files),
                               "input_sha256": list(files.values()), "panels": list(panels),
                               "panel_sha256": list(panels.values())}
    return adata
