"""Assemble the batch report from the result files."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # no display on lab servers and cluster nodes

from immuno.errors import UserError  # noqa: E402
from immuno.io import write_text  # noqa: E402
from immuno.report import sections  # noqa: E402
from immuno.report.html import environment, table_html  # noqa: E402
from immuno.report.status import ASSAYS, assay_counts, batch_level_flags, pass_fail_matrix  # noqa: E402
from immuno.study.load import read_batch  # noqa: E402


def build_report(batch_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for a batch results folder.

    Parameters
    ----------
    batch_dir
        ``results/<batch_id>`` holding measurements.parquet, qc/ and provenance.json.
    out
        Output file (default ``<batch_dir>/report.html``).

    Returns
    -------
    pathlib.Path
        The report file.

    Raises
    ------
    UserError
        The folder is not a complete batch results folder, or its measurement table
        breaks the schema (and has no conversion rule).
    """
    batch_dir = Path(batch_dir)
    needed = [batch_dir / "measurements.parquet", batch_dir / "qc" / "metrics.parquet",
              batch_dir / "qc" / "flags.parquet", batch_dir / "provenance.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise UserError.single(str(batch_dir), f"not a complete batch results folder; missing {', '.join(missing)}",
                               hint="Run the batch first (immuno run BATCH), then build its report.")
    m, prov, converted = read_batch(batch_dir)
    metrics = pd.read_parquet(needed[1])
    flags = pd.read_parquet(needed[2])
    for col in ("sample_id", "target", "reason", "flag", "severity", "assay"):
        flags[col] = flags[col].fillna("")
    metrics["sample_id"] = metrics["sample_id"].fillna("")
    assays = [a for a in ASSAYS if (m.assay == a).any()]
    cards = [assay_counts(m, metrics, flags, a) for a in assays]
    totals = {k: sum(c[k] for c in cards) for k in ("n_values", "n_failing_values", "n_checks", "n_failed_checks")}
    totals["flags"] = {s: sum(c["flags"][s] for c in cards) for s in ("fail", "warning", "info")}
    matrix_assays, matrix_rows = pass_fail_matrix(m, flags)
    by = {a: m[m.assay == a] for a in assays}
    context = {
        "cytometry": sections.cytometry(by["cytometry"], flags[flags.assay == "cytometry"], batch_dir)
        if "cytometry" in by else None,
        "chemokine": sections.chemokine(by["chemokine"], metrics, batch_dir) if "chemokine" in by else None,
        "chimerism": sections.chimerism(by["chimerism"], flags[flags.assay == "chimerism"], batch_dir)
        if "chimerism" in by else None,
    }
    order = {"fail": 0, "warning": 1, "info": 2}
    flags_sorted = flags.assign(_o=flags.severity.map(order)).sort_values(
        ["_o", "assay", "sample_id", "flag"], kind="stable").drop(columns="_o")
    failed = metrics[metrics.passed.eq(False)]
    html = environment().get_template("report.html.j2").render(
        batch_id=prov.get("batch_id", batch_dir.name), prov=prov, converted=converted, cards=cards, totals=totals,
        matrix_assays=matrix_assays, matrix_rows=matrix_rows, **context,
        batch_flags=table_html(batch_level_flags(flags_sorted, set(m.sample_id))),
        flags=table_html(flags_sorted), n_flags=len(flags),
        failed_metrics=table_html(failed), n_failed_metrics=len(failed), n_metrics=len(metrics),
        inputs=sorted(prov.get("inputs", {}).items()), panels=sorted(prov.get("panels", {}).items()),
    )
    dest = Path(out) if out else batch_dir / "report.html"
    write_text(html, dest)
    return dest
