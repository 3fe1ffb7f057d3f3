"""One RT-qPCR run, quantified: the Cq table, relative expression and the agreement with
the software's own comparative-Ct columns.

Reference genes and the calibrator come, in this order, from explicit options
(``--reference-gene``, ``--calibrator``), from the panel's ``qpcr`` section, or from the
file itself (a QuantStudio export states its ``Endogenous Control`` and ``Reference
Sample``); where each came from is recorded. Without a reference gene no expression is
computed - the Cq table is still written, and the run says why.

Where the export carries ``Delta Ct Mean``, ``Delta Delta Ct`` and ``RQ``, each is
compared with ours to its printed precision (three decimals, the rounding of each Ct
propagated): our dCq from the run's Cts where the reference wells are in the file, and
ddCq and RQ from the file's own dCt (which checks the arithmetic even when the export
omits the reference wells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.io.plate import PlateData, PlateIssue
from immuno.chemokines.quantify.qpcr import efficiency_from_standards, relative_expression

#: half a unit of the three decimals QuantStudio prints (when a row's precision is unknown)
PRINT_ULP = 0.0005


@dataclass
class RunResult:
    """Everything computed on one qPCR run."""

    plate_id: str
    cq: pd.DataFrame
    expression: pd.DataFrame
    metrics: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    vendor: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference_genes: list[str] = field(default_factory=list)
    calibrator: str | None = None
    reason: str = ""
    issues: list[PlateIssue] = field(default_factory=list)

    @property
    def quantified(self) -> bool:
        """Whether relative expression was computed for at least one target."""
        return bool(len(self.expression))


def cq_table(plate: PlateData) -> pd.DataFrame:
    """The run's Cq values per well and target, with each sample's replicate mean and SD."""
    w = plate.wells.copy()
    use = w[~w["omitted"] & (w["problem"] == "")]
    g = use.groupby(["sample_name", "target"])["cq"]
    stats = pd.DataFrame(
        {"cq_mean": g.mean(), "cq_sd": g.std(ddof=1), "n_cq": g.count()}
    ).reset_index()
    return w.merge(stats, on=["sample_name", "target"], how="left")


def _choose(option: Any, panel_value: Any, file_value: Any, what: str) -> tuple[Any, str]:
    if option:
        return option, f"{what} given as an option"
    if panel_value:
        return panel_value, f"{what} from the panel"
    if file_value:
        return file_value, f"{what} stated in the file"
    return None, ""


def quantify_run(
    plate: PlateData,
    panel: Any = None,
    reference_genes: list[str] | None = None,
    calibrator: str | None = None,
) -> RunResult:
    """Quantify one qPCR run.

    Parameters
    ----------
    plate
        A qPCR run from :func:`immuno.chemokines.read_plate`.
    panel
        Optional panel; its ``qpcr`` section may name ``reference_genes``, ``calibrator``,
        ``efficiency`` (``auto`` from standards, or ``assume_100``) and QC limits.
    reference_genes, calibrator
        Options that override the panel and the file.

    Returns
    -------
    RunResult
    """
    spec = dict(panel.get("qpcr", {})) if panel is not None else {}
    refs, ref_src = _choose(
        list(reference_genes or []),
        spec.get("reference_genes"),
        [plate.meta["endogenous_control"]] if plate.meta.get("endogenous_control") else None,
        "reference genes",
    )
    cal, cal_src = _choose(
        calibrator, spec.get("calibrator"), plate.meta.get("reference_sample"), "calibrator"
    )
    result = RunResult(
        plate.plate_id,
        cq_table(plate),
        pd.DataFrame(),
        reference_genes=list(refs or []),
        calibrator=cal,
        issues=list(plate.issues),
    )
    for r in plate.wells[plate.wells["problem"] != ""].itertuples():
        result.flags.append(
            {
                "sample_id": r.sample_name,
                "target": f"{r.target}@{r.well}",
                "flag": "well_excluded",
                "severity": "warning",
                "reason": f"well {r.well} left out: {r.problem}",
            }
        )
    # the software's comparative-Ct columns are checked whether or not we can normalise
    usable = plate.wells[plate.wells["problem"] == ""]
    result.vendor = _vendor_qpcr(plate, usable, list(refs or []), cal, result)
    if "genotyping" in plate.meta.get("Experiment Type", "").lower():
        result.reason = "a genotyping run (allele Cts and calls): no relative expression; the Cq table is written"
        return result
    if plate.wells["cq"].notna().sum() == 0:
        result.reason = (
            "no Cq value in the export (amplification curves only?); expected the run's Cq results"
        )
        return result
    if not refs:
        result.reason = (
            "no reference gene: give --reference-gene, a panel with qpcr: reference_genes, or an export "
            "that states its Endogenous Control; the Cq table is written"
        )
        return result
    if cal and cal not in set(plate.wells["sample_name"]):
        result.flags.append(
            {
                "sample_id": "",
                "target": "",
                "flag": "calibrator_missing",
                "severity": "warning",
                "reason": f"calibrator {cal!r} ({cal_src}) is not a sample of the run; expression is "
                "relative to the reference genes only (2^-dCq)",
            }
        )
        cal = result.calibrator = None
    for text in (ref_src and f"{ref_src}: {', '.join(refs)}", cal_src and f"{cal_src}: {cal}"):
        if text:
            result.flags.append(
                {
                    "sample_id": "",
                    "target": "",
                    "flag": "qpcr_normalisation",
                    "severity": "info",
                    "reason": text,
                }
            )
    eff: dict[str, float] = {}
    _vendor_efficiency(plate, result)
    if spec.get("efficiency", "auto") == "auto":
        for r in efficiency_from_standards(plate.wells).itertuples():
            ok = 90.0 <= r.efficiency <= 110.0 and r.r2 >= 0.98
            result.metrics.append(
                {
                    "check": "qpcr_efficiency",
                    "target": r.target,
                    "value": r.efficiency,
                    "lower_limit": 90.0,
                    "upper_limit": 110.0,
                    "passed": ok,
                    "detail": f"slope {r.slope:.3f}, R^2 {r.r2:.4f}, {r.n_levels} levels",
                }
            )
            eff[r.target] = r.amplification
    rules = {k: spec[k] for k in ("max_replicate_spread", "ntc_min_cq") if k in spec}
    try:
        table, m, f = relative_expression(usable, list(refs), cal, eff, rules)
    except (ValueError, KeyError) as exc:
        result.reason = f"cannot quantify the run: {exc}"
        return result
    result.expression, result.metrics, result.flags = table, result.metrics + m, result.flags + f
    if table.empty:
        result.reason = (
            f"no target other than the reference genes ({', '.join(refs)}) has a Cq in the run's "
            "samples; the Cq table is written"
        )
    return result


def _vendor_efficiency(plate: PlateData, result: RunResult) -> None:
    """Our standard-curve slope beside the one the software states (printed to 3 decimals:
    two half-units of difference allowed)."""
    if plate.vendor_curves.empty or "slope" not in plate.vendor_curves:
        return
    ours = efficiency_from_standards(plate.wells[plate.wells["problem"] == ""]).set_index("target")
    for v in plate.vendor_curves.itertuples():
        if v.target not in ours.index or not math.isfinite(v.slope):
            continue
        diff = float(ours.loc[v.target, "slope"] - v.slope)
        result.metrics.append(
            {
                "sample_id": "",
                "check": "vendor_slope",
                "target": v.target,
                "value": diff,
                "lower_limit": -2 * PRINT_ULP,
                "upper_limit": 2 * PRINT_ULP,
                "passed": abs(diff) <= 2 * PRINT_ULP + 1e-12,
                "detail": f"our slope {ours.loc[v.target, 'slope']:.4f} vs the file's {v.slope:g} "
                f"(efficiency {ours.loc[v.target, 'efficiency']:.3f} % vs {v.efficiency:g} %)",
            }
        )


def _vendor_qpcr(
    plate: PlateData, usable: pd.DataFrame, refs: list[str], cal: str | None, result: RunResult
) -> pd.DataFrame:
    """Our dCq / ddCq / RQ beside the software's own, to its printed precision."""
    w = plate.wells
    if not w[["vendor_dcq", "vendor_ddcq", "vendor_rq"]].notna().any().any():
        return pd.DataFrame()
    vend = (
        w[w["vendor_dcq"].notna() | w["vendor_rq"].notna()]
        .groupby(["sample_name", "target"])
        .agg(
            vendor_dcq=("vendor_dcq", "first"),
            vendor_ddcq=("vendor_ddcq", "first"),
            vendor_rq=("vendor_rq", "first"),
            u_cq=("cq_ulp", "max"),
            u_dcq=("vendor_dcq_ulp", "max"),
            u_ddcq=("vendor_ddcq_ulp", "max"),
            u_rq=("vendor_rq_ulp", "max"),
        )
        .reset_index()
    )
    for col in ("u_cq", "u_dcq", "u_ddcq", "u_rq"):
        vend[col] = vend[col].fillna(PRINT_ULP)
    if cal is None:
        # the reference sample is, by definition, the one whose ddCt is 0 (RQ 1): when the
        # file does not name it, its own numbers do - used for this check only
        zero = vend[
            (vend["vendor_ddcq"].abs() <= vend["u_ddcq"])
            & ((vend["vendor_rq"] - 1.0).abs() <= vend["u_rq"])
        ]
        if zero["sample_name"].nunique() == 1:
            cal = str(zero["sample_name"].iloc[0])
            result.flags.append(
                {
                    "sample_id": "",
                    "target": "",
                    "flag": "qpcr_vendor_reference",
                    "severity": "info",
                    "reason": f"the file's reference sample is {cal} (its Delta Delta Ct is 0); used to "
                    "check the file's Delta Delta Ct and RQ",
                }
            )
    try:
        livak, _, _ = (
            relative_expression(usable, refs, cal, None, None) if refs else (pd.DataFrame(), [], [])
        )
    except (ValueError, KeyError):
        livak = pd.DataFrame()
    ours = livak.set_index(["sample_name", "target"]) if len(livak) else pd.DataFrame()
    rows = []
    for r in vend.itertuples():
        key = (r.sample_name, r.target)
        dcq = float(ours.loc[key, "dcq"]) if len(ours) and key in ours.index else math.nan
        cal_row = (
            vend[(vend["sample_name"] == cal) & (vend["target"] == r.target)]
            if cal
            else vend.iloc[0:0]
        )
        ddcq_file = (
            r.vendor_dcq - float(cal_row["vendor_dcq"].iloc[0]) if len(cal_row) else math.nan
        )
        rows.append(
            {
                "sample_name": r.sample_name,
                "target": r.target,
                "u_cq": r.u_cq,
                "u_dcq": r.u_dcq,
                "u_dcq_cal": float(cal_row["u_dcq"].iloc[0]) if len(cal_row) else math.nan,
                "u_ddcq": r.u_ddcq,
                "u_rq": r.u_rq,
                "vendor_dcq": r.vendor_dcq,
                "ours_dcq": dcq,
                "vendor_ddcq": r.vendor_ddcq,
                "ours_ddcq": ddcq_file,
                "vendor_rq": r.vendor_rq,
                "ours_rq": 2.0**-ddcq_file if math.isfinite(ddcq_file) else math.nan,
            }
        )
    v = pd.DataFrame(rows)
    # each printed number carries half a unit of its last digit: our dCq is a difference
    # of two Ct means (one half-unit of Ct each) against the printed dCt; the ddCt from
    # the file is a difference of two printed dCts against the printed ddCt; RQ moves
    # by ln 2 per cycle of ddCt, against the printed RQ
    v["dcq_ok"] = (v["ours_dcq"] - v["vendor_dcq"]).abs() <= 2 * v["u_cq"] + v["u_dcq"] + 1e-9
    u_dd = v["u_dcq"] + v["u_dcq_cal"]
    v["ddcq_ok"] = (v["ours_ddcq"] - v["vendor_ddcq"]).abs() <= u_dd + v["u_ddcq"] + 1e-9
    tol_rq = v["ours_rq"] * math.log(2.0) * u_dd + v["u_rq"]
    v["rq_ok"] = (v["ours_rq"] - v["vendor_rq"]).abs() <= tol_rq + 1e-9
    for col, label in (("dcq", "Delta Ct"), ("ddcq", "Delta Delta Ct"), ("rq", "RQ")):
        both = v[f"ours_{col}"].notna() & v[f"vendor_{col}"].notna()
        if not both.any():
            continue
        ok = v.loc[both, f"{col}_ok"]
        result.metrics.append(
            {
                "sample_id": "",
                "check": f"vendor_{col}",
                "target": ",".join(sorted(set(v.loc[both, "target"]))),
                "value": float(ok.mean()),
                "lower_limit": 1.0,
                "passed": bool(ok.all()),
                "detail": f"{int(ok.sum())} of {int(both.sum())} of the file's {label} values equal ours "
                "to print precision",
            }
        )
        for r in v[both & ~v[f"{col}_ok"]].itertuples():
            result.flags.append(
                {
                    "sample_id": r.sample_name,
                    "target": r.target,
                    "flag": f"vendor_{col}_differs",
                    "severity": "warning",
                    "reason": f"the file's {label} {getattr(r, f'vendor_{col}'):.4g} vs ours "
                    f"{getattr(r, f'ours_{col}'):.4g} (beyond print precision)",
                }
            )
    return v


def expression_table(result: RunResult) -> pd.DataFrame:
    """The relative-expression rows with the columns every output expects."""
    t = result.expression.copy()
    if t.empty:
        return t
    t["plate_id"] = result.plate_id
    t["unit"] = "relative expression"
    t["flag"] = ""
    t["qc_pass"] = np.isfinite(t["value"].to_numpy(dtype=float))
    return t
