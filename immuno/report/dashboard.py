"""The study dashboard: ``results/study/dashboard.html``, one self-contained page.

Per-patient D0/D10/M1 trajectories of every headline feature (keyed by assay, panel and
feature), the paired statistics, Levey-Jennings charts of the reference control and of
the kit controls across batches with Westgard violations marked, and the batch list
with pass/fail. Built from a :class:`immuno.study.Study` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on lab servers and cluster nodes

import pandas as pd  # noqa: E402

from immuno.errors import UserError  # noqa: E402
from immuno.io import write_text  # noqa: E402
from immuno.report.html import environment, figure_png, fmt_number, table_html  # noqa: E402
from immuno.study.charts import trajectory_figure  # noqa: E402
from immuno.study.matrix import ordered_visits  # noqa: E402


def _batches(study: Any) -> pd.DataFrame:
    """One row per batch with its QC outcome: fail when a fail flag or a failed check."""
    m, q, f = study.measurements(), study.qc_metrics(), study.qc_flags()
    rows = []
    for b in study.batch_table().itertuples():
        mb, qb, fb = m[m.batch_id == b.batch_id], q[q.batch_id == b.batch_id], f[f.batch_id == b.batch_id]
        failed_checks = int(qb.passed.eq(False).sum())
        fail_flags = int((fb.severity == "fail").sum())
        rows.append({"batch": b.batch_id, "started": b.started, "schema": b.schema_version
                     + (" (converted on reading)" if b.converted_from else ""), "assays": b.assays,
                     "samples": int(mb.sample_id.nunique()), "values failing QC": int((~mb.qc_pass).sum()),
                     "failed checks": f"{failed_checks} of {len(qb)}", "fail flags": fail_flags,
                     "warnings": int((fb.severity == "warning").sum()),
                     "status": "fail" if failed_checks or fail_flags else "pass"})
    return pd.DataFrame(rows)


def _trajectories(study: Any) -> list[dict[str, Any]]:
    out = []
    t = study.trajectories()
    visits = ordered_visits(t.visit.astype(str))
    for (assay, panel), g in t.groupby(["assay", "panel"], sort=True, observed=True):
        out.append({"title": f"{assay}: {panel}", "png": figure_png(trajectory_figure(g, visits))})
    return out


def _statistics(study: Any) -> pd.DataFrame:
    s = study.compare_visits()
    for c in ("median_baseline", "median_visit", "median_change", "hl_estimate", "ci_low", "ci_high"):
        s[c] = s[c].map(fmt_number)
    for c in ("ci_level", "p_value", "p_adjusted"):
        s[c] = s[c].map(lambda v: fmt_number(v, 3))
    return s.drop(columns=["wilcoxon_statistic"])


def _chart_entry(title: str, chart: Any) -> dict[str, Any]:
    t = chart.table
    return {"title": title, "png": figure_png(chart.figure), "violations": table_html(t[t.rules != ""]),
            "n": len(t), "n_flagged": int((t.rules != "").sum()), "no_guide": bool((t.status == "no_guide_set").all())}


def _charts(study: Any) -> list[dict[str, Any]]:
    out = []
    for assay in sorted(set(study.measurements().assay)):
        for title, chart in ((f"{assay}: reference control", study.control_chart(assay)),
                             (f"{assay}: kit controls", study.kit_control_chart(assay))):
            if len(chart.table):
                out.append(_chart_entry(title, chart))
    return out


def build_dashboard(study: Any, out: str | Path) -> Path:
    """Write the study dashboard.

    Parameters
    ----------
    study
        An open :class:`immuno.study.Study`.
    out
        The HTML file to write (``results/study/dashboard.html``).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    duplicates = study.duplicates()
    try:
        stats, refused = table_html(_statistics(study)), ""
        trajectories = _trajectories(study)
    except UserError as exc:  # duplicates: the statistics refuse, and the page says why
        stats, refused, trajectories = "", exc.report(), []
    batches = _batches(study)
    html = environment().get_template("dashboard.html.j2").render(
        results=str(study.results), batches=table_html(batches), n_batches=len(batches),
        n_failed_batches=int((batches.status == "fail").sum()) if len(batches) else 0,
        n_patients=int(study.measurements(controls=False).patient_id.nunique()),
        duplicates=table_html(duplicates) if len(duplicates) else "", n_duplicates=len(duplicates),
        superseded=table_html(study.superseded()[["batch_id", "sample_id", "patient_id", "visit", "assay", "panel",
                                                  "feature", "superseded_by"]]) if len(study.superseded()) else "",
        stats=stats, refused=refused, trajectories=trajectories, charts=_charts(study))
    return write_text(html, out)
