"""A batch's chemokine plates: read, quantify, derive scores and write the room's outputs.

Outputs under the room folder (``results/<batch>/chemokines/``):
``chemokines_measurements.parquet`` (docs/architecture.md, the measurement table), ``qc_metrics.parquet``,
``qc_flags.parquet``, ``wells.parquet`` (the ingested long table, with each left-out
well's reason), ``curves.parquet`` (one row per plate and analyte: status, coefficients,
R^2, LLOQ/ULOQ, anchor points, the vendor's curve and the agreement with it),
``standards.parquet`` (per standard level recovery), ``samples.parquet`` (per sample and
analyte, with the extrapolated value of censored ones), ``vendor.parquet`` (every vendor
value beside its reproduction and our refit), ``cq.parquet`` (qPCR runs' Cq tables),
``concentrations.h5ad`` and ``plots/``. A plate that cannot be read fails its own samples
(reason in the QC flags); the other plates finish.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.chemokines.io.plate import PlateData
from immuno.chemokines.io.readers import read_plate
from immuno.chemokines.pipeline.outputs import (
    ASSAY,
    concentrations_anndata,
    write_curve_plots,
    write_frame,
)
from immuno.chemokines.qc.westgard import levey_jennings
from immuno.chemokines.quantify.multiplex import PlateResult, analyte_map, quantify_plate
from immuno.chemokines.quantify.qpcr_run import RunResult, expression_table, quantify_run
from immuno.chemokines.quantify.scores import derived_scores
from immuno.contract.measurements import measurement_table
from immuno.contract.qc import flags_table, metrics_table
from immuno.errors import UserError
from immuno.io import sha256_file, write_h5ad, write_parquet


def quantify_file(
    path: str | Path,
    panel: Any = None,
    layout: str | Path | None = None,
    reference_genes: list[str] | None = None,
    calibrator: str | None = None,
) -> tuple[PlateData, PlateResult | RunResult]:
    """Read and quantify one plate export on its own (no batch).

    Parameters
    ----------
    path
        The export.
    panel
        Optional panel (analyte names and classes, curve and QC rules, qPCR normalisation).
    layout
        Optional plate layout (multiplex plates).
    reference_genes, calibrator
        qPCR normalisation, overriding the panel and what the file states.

    Returns
    -------
    (plate, result)
        ``result`` is a :class:`PlateResult` for multiplex plates and a
        :class:`~immuno.chemokines.quantify.qpcr_run.RunResult` for qPCR runs; both have
        ``metrics``, ``flags``, ``issues`` and ``quantified``.
    """
    plate = read_plate(path, layout)
    if plate.kind == "qpcr":
        return plate, quantify_run(plate, panel, reference_genes, calibrator)
    return plate, quantify_plate(plate, panel)


def issue_flags(result: PlateResult | RunResult, pid: str) -> list[dict[str, Any]]:
    """The export's problems and notes as QC flag rows."""
    return [
        {
            "sample_id": "",
            "target": f"{i.analyte}@{i.well}" if i.well else i.analyte,
            "flag": f"plate_{i.kind}",
            "severity": "warning" if i.blocking else "info",
            "reason": f"plate {pid}: {i}",
        }
        for i in result.issues
    ]


def _failed_file(
    sheet: pd.DataFrame, panel: Any, panel_name: str, reason: str
) -> tuple[list[dict], list[dict]]:
    flags, meas = [], []
    for r in sheet.itertuples():
        flags.append(
            {
                "sample_id": r.sample_id,
                "target": "",
                "flag": "file_failed",
                "severity": "fail",
                "reason": reason,
                "panel": panel_name,
            }
        )
        for a in panel.get("analytes", []) if panel is not None else []:
            meas.append(
                {
                    "sample_id": r.sample_id,
                    "patient_id": r.patient_id,
                    "visit": r.visit,
                    "panel": panel_name,
                    "feature": a["feature"],
                    "value": math.nan,
                    "unit": panel.get("unit", "pg/mL"),
                    "flag": "failed",
                    "qc_pass": False,
                }
            )
    return flags, meas


def _sample_rows(
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    file: str,
    panel_name: str,
    flags: list[dict],
    samples_all: list[pd.DataFrame],
) -> list[dict[str, Any]]:
    """Measurement rows (with class, LLOQ and ULOQ kept aside for the scores)."""
    meas = []
    present = set(table["sample_name"]) if len(table) else set()
    for r in sheet.itertuples():
        if r.sample_name not in present:
            flags.append(
                {
                    "sample_id": r.sample_id,
                    "target": "",
                    "flag": "sample_not_on_plate",
                    "severity": "fail",
                    "reason": f"sample name {r.sample_name!r} not found in {file}",
                    "panel": panel_name,
                }
            )
            continue
        st = table[table["sample_name"] == r.sample_name]
        samples_all.append(
            st.assign(
                sample_id=r.sample_id, patient_id=r.patient_id, visit=r.visit, panel=panel_name
            )
        )
        for s in st.to_dict("records"):
            if not s.get("in_panel", True):
                continue  # e.g. a monitoring bead region: kept in samples.parquet only
            lower, upper = s.get("lower", math.nan), s.get("upper", math.nan)
            if s["flag"] == "<LLOQ":
                upper = s["lloq"]  # censored: the value lies below LLOQ
            elif s["flag"] == ">ULOQ":
                lower = s["uloq"]
            meas.append(
                {
                    "sample_id": r.sample_id,
                    "patient_id": r.patient_id,
                    "visit": r.visit,
                    "panel": panel_name,
                    "feature": s["feature"],
                    "value": s["value"],
                    "unit": s["unit"],
                    "lower": lower,
                    "upper": upper,
                    "flag": s["flag"],
                    "qc_pass": bool(s["qc_pass"]),
                    "_class": s.get("class", ""),
                    "_lloq": s.get("lloq", math.nan),
                    "_uloq": s.get("uloq", math.nan),
                }
            )
    return meas


def _scores(meas: list[dict[str, Any]], panels: dict[str, Any]) -> list[dict[str, Any]]:
    mt = pd.DataFrame(meas)
    rows: list[dict[str, Any]] = []
    if mt.empty:
        return rows
    mt = mt.rename(columns={"_class": "class", "_lloq": "lloq", "_uloq": "uloq"})
    for panel_name, pm in mt.groupby("panel"):
        info = pm.drop_duplicates("sample_id").set_index("sample_id")
        for d in derived_scores(pm, panels.get(panel_name)):
            rows.append(
                {
                    **d,
                    "patient_id": info.loc[d["sample_id"], "patient_id"],
                    "visit": info.loc[d["sample_id"], "visit"],
                    "panel": panel_name,
                }
            )
    return rows


def process_batch(
    batch: Any, out_dir: str | Path, history: str | Path | None = None, plots: bool = True
) -> pd.DataFrame:
    """Quantify every chemokine plate of a batch and write the room's outputs.

    Parameters
    ----------
    batch
        A validated :class:`immuno.contract.batch.Batch`.
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
    parts: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("wells", "curves", "standards", "samples", "vendor", "cq")
    }
    lj: list[dict] = []
    for (file, layout, panel_name), group in rows.groupby(["file", "layout", "panel"], sort=True):
        panel = batch.panels.get(panel_name)
        sheet = group.assign(
            sample_name=group["sample_name"].where(group["sample_name"] != "", group["sample_id"])
        )
        tag = {"panel": panel_name}
        try:
            plate, result = quantify_file(
                batch.root / file, panel, batch.root / layout if layout else None
            )
        except UserError as exc:  # a malformed export fails its own samples only
            f, m = _failed_file(sheet, panel, panel_name, "; ".join(str(p) for p in exc.problems))
            flags += f
            meas += m
            continue
        except Exception as exc:  # noqa: BLE001 - one plate never stops the batch; the reason is kept
            f, m = _failed_file(
                sheet,
                panel,
                panel_name,
                f"{file}: unexpected {type(exc).__name__} while reading or "
                f"quantifying ({exc}); please report this file",
            )
            flags += f
            meas += m
            continue
        ident = _identifier(plate, sheet)
        metrics += [
            {**x, "sample_id": ident(x.get("sample_id", "")), **tag} for x in result.metrics
        ]
        flags += [
            {**x, "sample_id": ident(x.get("sample_id", "")), **tag}
            for x in [*result.flags, *issue_flags(result, plate.plate_id)]
        ]
        listed = set(sheet["sample_name"])
        shown = {n: (n if n in listed else ident(n)) for n in plate.wells["sample_name"].unique()}
        ids = {n: (ident(n) if n in listed else "") for n in shown}
        used = result.wells if isinstance(result, PlateResult) else plate.wells
        parts["wells"].append(
            used.assign(
                sample_name=used["sample_name"].map(shown),
                sample_id=used["sample_name"].map(ids),
                file=file,
            )
        )
        if isinstance(result, PlateResult):
            parts["curves"].append(result.curves.assign(panel=panel_name))
            parts["standards"].append(result.standards)
            parts["vendor"].append(
                result.vendor.assign(sample_name=result.vendor["sample_name"].map(shown))
            )
            table = result.samples
            lj += [
                {
                    "plate_id": plate.plate_id,
                    "check": "curve_ec50",
                    "target": c.feature,
                    "value": c.ec50,
                }
                for c in result.curves.itertuples()
                if c.status == "ok"
            ]
            ctrl = table[table["role"] == "control"] if len(table) else table
            lj += [
                {
                    "plate_id": plate.plate_id,
                    "check": f"control_{c.sample_name}",
                    "target": c.feature,
                    "value": c.value if math.isfinite(c.value) else c.extrapolated,
                }
                for c in ctrl.itertuples()
            ]
            if plots:
                write_curve_plots(result, plate, out / "plots")
        else:
            parts["cq"].append(
                result.cq.assign(
                    sample_name=result.cq["sample_name"].map(shown),
                    sample_id=result.cq["sample_name"].map(ids),
                    file=file,
                )
            )
            table = _qpcr_table(result, panel)
            if not result.quantified:
                for r in sheet.itertuples():
                    flags.append(
                        {
                            "sample_id": r.sample_id,
                            "target": "",
                            "flag": "not_quantified",
                            "severity": "fail",
                            "reason": f"{file}: {result.reason}",
                            **tag,
                        }
                    )
                continue
        meas += _sample_rows(table, sheet, file, panel_name, flags, parts["samples"])
    meas += _scores(meas, batch.panels)
    if lj:
        hist = pd.read_parquet(history) if history else None
        m, f = levey_jennings(pd.DataFrame(lj), hist)
        metrics += m
        flags += f
    return _write(batch, out, rows, meas, metrics, flags, parts)


def _qpcr_table(result: RunResult, panel: Any) -> pd.DataFrame:
    table = expression_table(result)
    if table.empty:
        return table
    names = analyte_map(sorted(set(table["target"])), panel)
    table["feature"] = table["target"].map(lambda t: names[t]["feature"])
    table["in_panel"] = table["target"].map(lambda t: names[t]["in_panel"] == "yes")
    table["class"] = table["target"].map(lambda t: names[t]["class"])
    table["role"] = "unknown"
    return table


def _write(
    batch: Any,
    out: Path,
    rows: pd.DataFrame,
    meas: list[dict],
    metrics: list[dict],
    flags: list[dict],
    parts: dict[str, list[pd.DataFrame]],
) -> pd.DataFrame:
    bid = batch.batch_id
    clean = [
        {**{k: v for k, v in x.items() if not k.startswith("_")}, "batch_id": bid, "assay": ASSAY}
        for x in meas
    ]
    table = measurement_table(clean) if clean else measurement_table([])
    for x in metrics:
        x.setdefault("panel", "")
    write_parquet(table, out / "chemokines_measurements.parquet")
    write_parquet(
        metrics_table([{**x, "batch_id": bid, "assay": ASSAY} for x in metrics]),
        out / "qc_metrics.parquet",
    )
    write_parquet(
        flags_table([{**x, "batch_id": bid, "assay": ASSAY} for x in flags]),
        out / "qc_flags.parquet",
    )
    for name in ("wells", "curves", "standards", "vendor", "cq"):
        write_frame([p for p in parts[name] if len(p)], out / f"{name}.parquet")
    samples = write_frame(parts["samples"], out / "samples.parquet")
    write_h5ad(
        concentrations_anndata(
            samples,
            bid,
            {str(f): sha256_file(batch.root / f) for f in sorted(set(rows["file"]))},
            {n: p.sha256 for n, p in batch.panels.items() if p.assay == ASSAY},
        ),
        out / "concentrations.h5ad",
    )
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
