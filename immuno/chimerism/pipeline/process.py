"""One batch's chimerism: every biopsy estimated with its panel's method, results written.

A biopsy whose file is unreadable or whose reference is missing fails on its own (a
``fail`` flag with the reason, a ``not_estimated`` measurement row); the others finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from immuno.chimerism.common.confounders import apply_input_limit, genome_equivalents
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.dpcr.droplets import ddpcr_wells
from immuno.chimerism.fish.nuclei import estimate_fish
from immuno.chimerism.ngs.counts import estimate_counts
from immuno.chimerism.ngs.mixture import estimate_counts_donors
from immuno.chimerism.pipeline.inputs import (
    NEEDS_REFERENCES,
    FileCache,
    donor_references,
    recipient_replicates,
    references,
)
from immuno.chimerism.qpcr.ct import estimate_qpcr
from immuno.chimerism.str.fragments import estimate_str
from immuno.chimerism.str.peaks import StrSettings
from immuno.contract.panels import Panel
from immuno.errors import UserError

#: pure-recipient replicates needed before per-marker background errors replace the consensus
MIN_REPLICATES = 3


@dataclass
class BiopsyResult:
    """A biopsy's sheet row with its estimate."""

    row: pd.Series
    panel: str
    result: ChimerismResult


def _thresholds(panel: Panel) -> dict[str, Any]:
    return dict(panel.get("thresholds", {}) or {})


def estimate_biopsy(
    row: pd.Series, rows: pd.DataFrame, panel: Panel, cache: FileCache
) -> ChimerismResult:
    """Estimate one biopsy from its sheet row, the batch's chimerism rows and its panel.

    Problems with the inputs (unreadable file, missing reference, absent sample) become a
    ``fail`` flag on the result rather than an exception.
    """
    method = str(panel.get("method", ""))
    refs = references(rows, row)
    missing = [role for role in NEEDS_REFERENCES.get(method, ()) if refs[role] is None]
    if missing:
        return not_estimable(
            method,
            [
                Flag(
                    "missing_reference",
                    "fail",
                    f"no {' and no '.join(missing)} row for patient {row['patient_id']}, "
                    f"panel {row['panel']}, donor {row['donor_id'] or '(none)'}",
                )
            ],
        )
    try:
        return _estimate(method, row, rows, refs, panel, cache)
    except UserError as exc:
        return not_estimable(
            method, [Flag("unreadable_input", "fail", "; ".join(str(p) for p in exc.problems))]
        )


def _estimate(
    method: str,
    row: pd.Series,
    rows: pd.DataFrame,
    refs: dict[str, pd.Series | None],
    panel: Panel,
    cache: FileCache,
) -> ChimerismResult:
    t = _thresholds(panel)
    rec, don = refs["recipient_reference"], refs["donor_reference"]
    # the DNA input of the reaction (the sheet's per-sample amount, else the panel's fixed
    # one) bounds the LoD: claiming f needs at least 3 / f genomes
    sheet_ng = str(row.get("dna_input_ng", "") or "")
    dna_ng = float(sheet_ng) if sheet_ng else panel.get("dna_input_ng")
    source = f"{dna_ng} ng per the sample sheet" if sheet_ng else f"{dna_ng} ng per the panel"
    genomes = genome_equivalents(float(dna_ng)) if dna_ng else None
    donors = donor_references(rows, row)
    if method == "str":
        settings = StrSettings.from_panel(
            t, dict(panel.get("artefacts", {}) or {}), list(panel.get("loci", []) or [])
        )
        bx, rec_peaks = cache.sample(row, "str"), cache.sample(rec, "str")
        if len(donors) > 1:
            result = estimate_str(
                bx,
                rec_peaks,
                donors={d: cache.sample(r, "str") for d, r in donors.items()},
                settings=settings,
            )
        else:
            result = estimate_str(bx, rec_peaks, cache.sample(don, "str"), settings=settings)
        return apply_input_limit(result, genomes, source)
    if method == "ngs":
        # several recipient references of one patient are pure-recipient replicates:
        # with them the background error is learnt per marker
        reps = recipient_replicates(rows, row)
        replicates = [cache.sample(r, "ngs") for r in reps] if len(reps) >= MIN_REPLICATES else []
        if len(donors) > 1:
            return estimate_counts_donors(
                cache.sample(row, "ngs"),
                cache.sample(rec, "ngs"),
                {d: cache.sample(r, "ngs") for d, r in donors.items()},
                replicates=replicates,
                alpha=float(t.get("alpha", 0.01)),
                min_depth=int(t.get("min_depth", 100)),
                genome_equivalents=genomes,
            )
        result = estimate_counts(
            cache.sample(row, "ngs"),
            cache.sample(rec, "ngs"),
            cache.sample(don, "ngs"),
            replicates=replicates,
            markers=str(panel.get("marker_selection", "auto")),
            alpha=float(t.get("alpha", 0.01)),
            min_depth=int(t.get("min_depth", 100)),
        )
        return apply_input_limit(result, genomes, source)
    if method == "ddpcr":
        cfg = panel.get("ddpcr", {})
        wells = cache.sample(row, "ddpcr")
        target, reference = cfg.get("target_assay"), cfg.get("reference_assay")
        for assay in (target, reference):
            if assay not in set(wells["assay"]):
                raise UserError.single(
                    str(row["file"]), f"no wells of assay {assay!r} for sample {row['sample_id']}"
                )
        blank = cache.sample(rec, "ddpcr") if rec is not None else None
        return ddpcr_wells(
            wells,
            blank,
            target,
            reference,
            float(cfg.get("target_copies", 1)),
            float(cfg.get("reference_copies", 2)),
        )
    if method == "qpcr":
        cfg = panel.get("qpcr", {})
        bx, cal = cache.sample(row, "qpcr"), cache.sample(don, "qpcr")

        def cts(table: pd.DataFrame, target: str) -> list[float]:
            return table.loc[table["target"] == target, "ct"].tolist()

        marker, ref_gene = cfg.get("marker_target"), cfg.get("reference_target")
        return estimate_qpcr(
            cts(bx, marker),
            cts(bx, ref_gene),
            cts(cal, marker),
            cts(cal, ref_gene),
            efficiency=float(cfg.get("efficiency", 1.0)),
            lod=float(cfg.get("lod", 0.001)),
        )
    if method == "fish":
        counts = cache.sample(row, "fish")
        return estimate_fish(
            int(counts["donor_nuclei"].sum()),
            int(counts["nuclei"].sum()),
            background=float(panel.get("fish", {}).get("background", 0.0)),
        )
    return not_estimable(
        method, [Flag("unknown_method", "fail", f"panel {panel.name!r} has method {method!r}")]
    )


def estimate_batch(batch: Any) -> list[BiopsyResult]:
    """Estimate every biopsy of a batch (``immuno.contract.batch.Batch``), in sheet order."""
    rows = batch.rows("chimerism")
    cache = FileCache.for_rows(batch.root, rows)
    out = []
    for _, row in rows[rows["role"] == "biopsy"].iterrows():
        panel = batch.panels.get(row["panel"])
        if panel is None:
            result = not_estimable(
                "", [Flag("unknown_panel", "fail", f"panel {row['panel']!r} is not loaded")]
            )
        else:
            result = estimate_biopsy(row, rows, panel, cache)
        out.append(BiopsyResult(row, row["panel"], result))
    return out


def measurement_rows(batch_id: str, results: list[BiopsyResult]) -> list[dict[str, Any]]:
    """Measurement-table rows (donor_fraction and donor_fraction_lod per biopsy)."""
    rows = []
    for br in results:
        for m in br.result.measurement_rows():
            rows.append(
                {
                    "batch_id": batch_id,
                    "sample_id": br.row["sample_id"],
                    "patient_id": br.row["patient_id"],
                    "visit": br.row["visit"],
                    "panel": br.panel,
                    **m,
                }
            )
    return rows


def qc_rows(
    batch_id: str, results: list[BiopsyResult]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """QC metric and flag rows of every biopsy."""
    metrics, flags = [], []
    for br in results:
        r = br.result
        base = {
            "batch_id": batch_id,
            "sample_id": br.row["sample_id"],
            "assay": "chimerism",
            "panel": br.panel,
        }
        metrics.append(
            {
                **base,
                "check": "informative_markers",
                "target": r.method,
                "value": r.n_informative,
                "lower_limit": 3 if r.method in ("ngs", "str") else math.nan,
                "passed": not r.failed,
                "detail": "informative loci or markers used",
            }
        )
        metrics.append(
            {
                **base,
                "check": "lod",
                "target": r.method,
                "value": 100 * r.lod,
                "passed": None,
                "detail": "limit of detection, % donor",
            }
        )
        if "third_contributor_llr" in r.details:
            metrics.append(
                {
                    **base,
                    "check": "third_contributor_llr",
                    "target": r.method,
                    "value": r.details["third_contributor_llr"],
                    "upper_limit": math.log(100.0),
                    "passed": r.details["third_contributor_llr"] <= math.log(100.0),
                    "detail": "log-likelihood of an unknown contributor minus the donor's",
                }
            )
        if "cv" in r.details:
            metrics.append(
                {
                    **base,
                    "check": "locus_cv",
                    "target": r.method,
                    "value": r.details["cv"],
                    "passed": None,
                    "detail": "CV of the per-locus donor fractions",
                }
            )
        for f in r.all_flags():
            flags.append(
                {
                    **base,
                    "target": f.target or r.method,
                    "flag": f.flag,
                    "severity": f.severity,
                    "reason": f.reason,
                }
            )
    return metrics, flags


def marker_table(results: list[BiopsyResult], method: str) -> pd.DataFrame:
    """The per-locus (STR) or per-marker (NGS) tables of every biopsy, stacked."""
    parts = [
        br.result.markers.assign(sample_id=br.row["sample_id"], panel=br.panel)
        for br in results
        if br.result.method == method and len(br.result.markers)
    ]
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    front = ["sample_id", "panel"]
    return table[front + [c for c in table.columns if c not in front]]
