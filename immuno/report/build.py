"""Assemble the batch report from the result files."""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on lab servers and cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from immuno.batch import visit_sort_key  # noqa: E402
from immuno.errors import UserError  # noqa: E402
from immuno.io import write_text  # noqa: E402

#: headline features shown first for each assay
HEADLINES = {
    "cytometry": ["Th1", "Th2", "Th17", "Th1_17", "Treg", "Th1_Th2_ratio"],
    "chemokine": ["Th1_chemokine_score", "Th2_chemokine_score", "Th1_Th2_chemokine_ratio"],
    "chimerism": ["donor_fraction", "donor_fraction_lod"],
}
ASSAY_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}
#: at most this many per-sample plots per assay are embedded (the rest stay on disk)
MAX_PLOTS = 24


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _embed(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _fmt(value: Any, flag: Any, lower: Any, upper: Any) -> str:
    if pd.isna(value):
        return str(flag) if isinstance(flag, str) and flag else "-"
    text = f"{value:.4g}"
    if pd.notna(lower) and pd.notna(upper):
        text += f" [{lower:.3g}, {upper:.3g}]"
    if isinstance(flag, str) and flag and flag not in ("detected",):
        text += f" ({flag})"
    return text


def _assay_table(m: pd.DataFrame) -> pd.DataFrame:
    m = m.assign(cell=[_fmt(v, f, lo, up) for v, f, lo, up in zip(m.value, m.flag, m.lower, m.upper, strict=True)],
                 column=m.feature + " [" + m.unit.fillna("") + "]")
    table = m.pivot_table(index=["patient_id", "visit", "sample_id", "panel"], columns="column",
                          values="cell", aggfunc="first").fillna("")
    table.columns.name = None
    return table.reset_index()


def _visit_plot(m: pd.DataFrame, features: list[str]) -> str | None:
    m = m[m.feature.isin(features) & m.value.notna() & m.visit.notna() & (m.visit != "")]
    if m.empty:
        return None
    # one panel per feature and assay panel: an ICS Th1 and a surface Th1 are different measures
    m = m.assign(series=m.feature + " [" + m.unit.fillna("") + "]\n" + m.panel.fillna(""))
    order = sorted(m.series.unique(), key=lambda s: (features.index(s.split(" [")[0]), s))
    grid = sns.catplot(data=m, x="visit", y="value", hue="patient_id", col="series", col_order=order,
                       col_wrap=4, kind="point", sharey=False, height=2.6, aspect=1.2, dodge=0.2,
                       order=sorted(set(m.visit), key=visit_sort_key))
    grid.set_titles("{col_name}", size=8)
    return _png(grid.figure)


def _section(assay: str, m: pd.DataFrame, batch_dir: Path) -> dict[str, Any]:
    features = [f for f in HEADLINES[assay] if f in set(m.feature)]
    head = m[m.feature.isin(features)] if features else m
    plots_dir = batch_dir / ASSAY_DIRS[assay] / "plots"
    plot_files = sorted(plots_dir.glob("*.png"))[:MAX_PLOTS] if plots_dir.is_dir() else []
    plot_feats = features if assay != "chemokine" else sorted(set(m.feature) - set(HEADLINES["chemokine"]))[:9]
    return {
        "assay": assay,
        "n_samples": m.sample_id.nunique(),
        "n_rows": len(m),
        "n_failed": int((~m.qc_pass).sum()),
        "table": _assay_table(head).to_html(index=False, classes="data", border=0),
        "visit_plot": _visit_plot(m, plot_feats),
        "plots": [{"name": p.stem, "data": _embed(p)} for p in plot_files],
        "more_plots": max(0, len(list(plots_dir.glob("*.png"))) - MAX_PLOTS) if plots_dir.is_dir() else 0,
    }


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
    """
    batch_dir = Path(batch_dir)
    needed = [batch_dir / "measurements.parquet", batch_dir / "qc" / "metrics.parquet",
              batch_dir / "qc" / "flags.parquet", batch_dir / "provenance.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise UserError.single(str(batch_dir), f"not a complete batch results folder; missing {', '.join(missing)}")
    m = pd.read_parquet(needed[0])
    metrics = pd.read_parquet(needed[1])
    flags = pd.read_parquet(needed[2])
    prov = json.loads(needed[3].read_text())
    sections = [_section(a, m[m.assay == a], batch_dir) for a in ("cytometry", "chemokine", "chimerism")
                if (m.assay == a).any()]
    failed_metrics = metrics[metrics.passed.eq(False)]
    severity_order = {"fail": 0, "warning": 1, "info": 2}
    flags = flags.assign(_o=flags.severity.map(severity_order)).sort_values(["_o", "assay", "sample_id"]).drop(columns="_o")
    env = Environment(autoescape=select_autoescape(["html"]))
    template = env.from_string(resources.files("immuno.report").joinpath("templates/report.html.j2").read_text())
    html = template.render(
        batch_id=prov.get("batch_id", batch_dir.name), prov=prov, sections=sections,
        flag_counts=flags.groupby(["assay", "severity"]).size().unstack(fill_value=0).rename_axis(columns=None).reset_index().to_html(index=False, classes="data", border=0) if len(flags) else "",
        flags=flags.head(500).to_html(index=False, classes="data", border=0, na_rep=""),
        n_flags=len(flags),
        failed_metrics=failed_metrics.head(500).to_html(index=False, classes="data", border=0, na_rep=""),
        n_failed_metrics=len(failed_metrics), n_metrics=len(metrics),
        inputs=sorted(prov.get("inputs", {}).items()), panels=sorted(prov.get("panels", {}).items()),
    )
    dest = Path(out) if out else batch_dir / "report.html"
    write_text(html, dest)
    return dest
