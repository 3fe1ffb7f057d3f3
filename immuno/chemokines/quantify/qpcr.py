"""Relative quantification of RT-qPCR runs: efficiency, 2^-ddCq / Pfaffl, reference genes.

With amplification factor E (2 for 100 % efficiency) the relative quantity of gene g in
sample s is ``E_g ** (Cq_g,calibrator - Cq_g,s)``; the target's expression is its relative
quantity divided by the geometric mean of the reference genes' (Vandesompele 2002). With
every E = 2 this is Livak's 2^-ddCq; with efficiencies from a standard series it is
Pfaffl's ratio generalised to several reference genes. Without a calibrator the
calibrator term is dropped (expression relative to the reference genes, 2^-dCq).

Checks: technical replicates within 0.5 Cq, no-template controls undetermined or Cq >= 35,
efficiency 90-110 % (slope -3.6 to -3.1) with R^2 >= 0.98, reference-gene stability
(geNorm M < 0.5). The spread of dCq is propagated as sqrt(s_target^2 + s_reference^2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

QPCR_DEFAULTS: dict[str, float] = {
    "max_replicate_spread": 0.5,
    "ntc_min_cq": 35.0,
    "efficiency_low": 90.0,
    "efficiency_high": 110.0,
    "min_r2": 0.98,
    "genorm_max_m": 0.5,
}


def efficiency_from_standards(wells: pd.DataFrame) -> pd.DataFrame:
    """Amplification efficiency per target from its standard series (Cq vs log10 quantity).

    Returns
    -------
    pandas.DataFrame
        target, n_levels, slope, intercept, r2, efficiency (%), amplification (E).
    """
    rows = []
    std = wells[
        (wells["role"] == "standard")
        & wells["cq"].notna()
        & (wells["quantity"] > 0)
        & ~wells["omitted"]
    ]
    for target, s in std.groupby("target", sort=True):
        if s["quantity"].nunique() < 3:
            continue
        x = np.log10(s["quantity"].to_numpy())
        y = s["cq"].to_numpy()
        slope, intercept = np.polyfit(x, y, 1)
        pred = slope * x + intercept
        r2 = 1.0 - float(np.sum((y - pred) ** 2)) / float(np.sum((y - y.mean()) ** 2))
        amp = 10.0 ** (-1.0 / slope)
        rows.append(
            {
                "target": target,
                "n_levels": int(s["quantity"].nunique()),
                "slope": float(slope),
                "intercept": float(intercept),
                "r2": r2,
                "efficiency": 100.0 * (amp - 1.0),
                "amplification": amp,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["target", "n_levels", "slope", "intercept", "r2", "efficiency", "amplification"],
    )


def genorm_m(expression: pd.DataFrame, reference_genes: list[str]) -> dict[str, float]:
    """geNorm stability M of each reference gene: the mean standard deviation, over
    samples, of its log2 ratio to each other reference gene (lower is more stable).

    ``expression`` is the wide table sample x gene of relative quantities.
    """
    genes = [g for g in reference_genes if g in expression.columns]
    if len(genes) < 2:
        return {}
    logs = np.log2(expression[genes])
    out = {}
    for g in genes:
        sds = [float((logs[g] - logs[h]).std(ddof=1)) for h in genes if h != g]
        out[g] = float(np.mean(sds))
    return out


def relative_expression(
    wells: pd.DataFrame,
    reference_genes: list[str],
    calibrator: str | None = None,
    efficiencies: dict[str, float] | None = None,
    rules: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """Relative expression of every target in every unknown sample.

    Parameters
    ----------
    wells
        The qPCR wells table of one run.
    reference_genes
        Targets used for normalisation (their geometric mean).
    calibrator
        Sample name the expression is relative to (2^-ddCq); ``None`` gives 2^-dCq.
    efficiencies
        Amplification factor E per target (2.0 = 100 %); missing targets use 2.0.
    rules
        Overrides of :data:`QPCR_DEFAULTS`.

    Returns
    -------
    (table, qc metric rows, qc flag rows)
        The table has one row per sample and target (not the reference genes): mean_cq,
        cq_spread, ref_cq, dcq, dcq_sd, ddcq, value (relative expression), lower/upper
        (value at dCq -/+ one SD), method.
    """
    r = {**QPCR_DEFAULTS, **(rules or {})}
    eff = {t: 2.0 for t in wells["target"].unique()}
    eff.update(efficiencies or {})
    metrics: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    use = wells[~wells["omitted"]]
    for target, s in use[use["role"] == "ntc"].groupby("target"):
        worst = s["cq"].min()
        ok = bool(s["cq"].isna().all() or worst >= r["ntc_min_cq"])
        metrics.append(
            {
                "sample_id": "",
                "check": "qpcr_ntc",
                "target": target,
                "value": worst,
                "lower_limit": r["ntc_min_cq"],
                "passed": ok,
                "detail": "lowest NTC Cq (NaN = undetermined)",
            }
        )
        if not ok:
            flags.append(
                {
                    "sample_id": "",
                    "target": target,
                    "flag": "ntc_amplified",
                    "severity": "fail",
                    "reason": f"no-template control amplified at Cq {worst:.2f} (< {r['ntc_min_cq']:g}); contamination",
                }
            )
    unk = use[use["role"].isin(["unknown", "control"])]
    g = unk.groupby(["sample_name", "target"], sort=False)["cq"]
    stats = pd.DataFrame(
        {"mean_cq": g.mean(), "sd_cq": g.std(ddof=1), "spread": g.max() - g.min(), "n": g.count()}
    ).reset_index()
    for row in stats[stats["spread"] > r["max_replicate_spread"]].itertuples():
        flags.append(
            {
                "sample_id": row.sample_name,
                "target": row.target,
                "flag": "replicate_spread",
                "severity": "warning",
                "reason": f"technical replicates span {row.spread:.2f} Cq (> {r['max_replicate_spread']:g})",
            }
        )
    stats["sd_cq"] = stats["sd_cq"].fillna(0.0)
    measured = set(stats["target"])
    missing_refs = [gname for gname in reference_genes if gname not in measured]
    reference_genes = [gname for gname in reference_genes if gname in measured]
    if not reference_genes:
        raise ValueError(
            f"none of the reference genes ({', '.join(missing_refs)}) is measured in the "
            f"run's samples (targets: {', '.join(sorted(measured)) or 'none'})"
        )
    for gname in missing_refs:
        flags.append(
            {
                "sample_id": "",
                "target": gname,
                "flag": "reference_gene_missing",
                "severity": "warning",
                "reason": f"reference gene {gname} not measured; normalised on {', '.join(reference_genes)}",
            }
        )
    wide = stats.pivot(index="sample_name", columns="target", values="mean_cq")
    sd = stats.pivot(index="sample_name", columns="target", values="sd_cq")
    cal = wide.loc[calibrator] if calibrator is not None else pd.Series(0.0, index=wide.columns)
    # log2 relative quantities: log2(E) * (Cq_cal - Cq)
    log2e = pd.Series({t: math.log2(eff[t]) for t in wide.columns})
    log2rq = (cal - wide) * log2e if calibrator is not None else -wide * log2e
    ref_log2 = log2rq[reference_genes].mean(axis=1)  # log of the geometric mean
    ref_sd = np.sqrt((sd[reference_genes] ** 2).sum(axis=1)) / len(reference_genes)
    m = genorm_m(np.exp2(log2rq), reference_genes)
    for gene, value in m.items():
        metrics.append(
            {
                "sample_id": "",
                "check": "qpcr_reference_stability",
                "target": gene,
                "value": value,
                "upper_limit": r["genorm_max_m"],
                "passed": value < r["genorm_max_m"],
                "detail": "geNorm M",
            }
        )
    rows = []
    method = (
        "Pfaffl"
        if any(abs(eff[t] - 2.0) > 1e-9 for t in wide.columns)
        else ("2^-ddCq" if calibrator else "2^-dCq")
    )
    for sample in wide.index:
        for target in wide.columns:
            if target in reference_genes or not np.isfinite(wide.loc[sample, target]):
                continue
            value_log2 = log2rq.loc[sample, target] - ref_log2.loc[sample]
            dcq_sd = float(math.sqrt(sd.loc[sample, target] ** 2 + ref_sd.loc[sample] ** 2))
            ref_cq = float(wide.loc[sample, reference_genes].mean())
            dcq = float(wide.loc[sample, target] - ref_cq)
            ddcq = (
                dcq - float(cal[target] - cal[reference_genes].mean()) if calibrator else math.nan
            )
            rows.append(
                {
                    "sample_name": sample,
                    "target": target,
                    "mean_cq": float(wide.loc[sample, target]),
                    "ref_cq": ref_cq,
                    "dcq": dcq,
                    "dcq_sd": dcq_sd,
                    "ddcq": ddcq,
                    "value": float(2.0**value_log2),
                    "lower": float(2.0 ** (value_log2 - dcq_sd)),
                    "upper": float(2.0 ** (value_log2 + dcq_sd)),
                    "method": method,
                    "efficiency": 100.0 * (eff[target] - 1.0),
                }
            )
    return pd.DataFrame(rows), metrics, flags
