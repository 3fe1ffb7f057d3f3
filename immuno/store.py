"""The study store: every batch's results as one set of tables for analysts.

Per-batch results are immutable; the study tables under ``results/study/`` are rebuilt
from them (adding batch B never rewrites batch A). In a notebook::

    from immuno.store import Study
    study = Study("results")
    study.measurements()                       # tidy pandas table, all batches
    study.sql("select visit, avg(value) from measurements where feature = 'Th1' group by visit")
    study.wide("cytometry")                    # samples x features
    study.to_anndata("chemokine")              # for scanpy
    study.change_from_baseline("chemokine")    # each feature's change from D0
    study.control_chart("cytometry")           # reference control across batches (Westgard)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.errors import UserError
from immuno.io import write_parquet
from immuno.measurements import COLUMNS, concat_measurements
from immuno.provenance import SCHEMA_VERSION
from immuno.qc import MIN_GUIDE_RUNS, flags_table, metrics_table, westgard

#: schema versions this code reads correctly
READABLE_SCHEMAS = (SCHEMA_VERSION,)


def batch_dirs(results: str | Path) -> list[Path]:
    """Complete batch result folders (those with provenance.json), sorted by name."""
    root = Path(results)
    return sorted(p.parent for p in root.glob("*/provenance.json") if p.parent.name != "study")


def _check_schema(batch_dir: Path) -> None:
    version = json.loads((batch_dir / "provenance.json").read_text()).get("schema_version")
    if str(version) not in READABLE_SCHEMAS:
        raise UserError.single(str(batch_dir / "provenance.json"),
                               f"results schema version {version!r}; this immuno reads {', '.join(READABLE_SCHEMAS)}",
                               hint="Re-run that batch with this version, or read it with the version that wrote it.")


class Study:
    """All batches under a results folder.

    Parameters
    ----------
    results
        The results folder holding ``<batch_id>/`` sub-folders.
    """

    def __init__(self, results: str | Path = "results") -> None:
        self.results = Path(results)
        self.batches = batch_dirs(self.results)
        for b in self.batches:
            _check_schema(b)

    def _read(self, relative: str) -> list[pd.DataFrame]:
        return [pd.read_parquet(b / relative) for b in self.batches if (b / relative).is_file()]

    def measurements(self, assay: str | None = None, feature: str | list[str] | None = None,
                     qc_pass_only: bool = False) -> pd.DataFrame:
        """The measurement table of every batch.

        Parameters
        ----------
        assay
            Keep one assay (``cytometry``, ``chemokine``, ``chimerism``).
        feature
            Keep one feature or a list of features.
        qc_pass_only
            Drop rows that failed QC.
        """
        m = concat_measurements(self._read("measurements.parquet"))
        if assay:
            m = m[m.assay == assay]
        if feature is not None:
            m = m[m.feature.isin([feature] if isinstance(feature, str) else feature)]
        if qc_pass_only:
            m = m[m.qc_pass]
        return m.reset_index(drop=True)

    def qc_metrics(self) -> pd.DataFrame:
        """Every QC metric of every batch."""
        parts = self._read("qc/metrics.parquet")
        return metrics_table(pd.concat(parts, ignore_index=True) if parts else [])

    def qc_flags(self) -> pd.DataFrame:
        """Every QC flag of every batch."""
        parts = self._read("qc/flags.parquet")
        return flags_table(pd.concat(parts, ignore_index=True) if parts else [])

    def sql(self, query: str) -> pd.DataFrame:
        """Run SQL (DuckDB) over the views ``measurements``, ``qc_metrics`` and ``qc_flags``."""
        import duckdb

        con = duckdb.connect()
        try:
            con.register("measurements", self.measurements())
            con.register("qc_metrics", self.qc_metrics())
            con.register("qc_flags", self.qc_flags())
            return con.execute(query).df()
        finally:
            con.close()

    def wide(self, assay: str, unit: bool = False) -> pd.DataFrame:
        """Samples x features of one assay (index batch_id, sample_id, patient_id, visit, panel).

        With ``unit=True`` the column names carry the unit, e.g. ``Th1 [% of CD4+]``.
        """
        m = self.measurements(assay)
        col = m.feature + (" [" + m.unit.fillna("") + "]" if unit else "")
        index = ["batch_id", "sample_id", "patient_id", "visit", "panel"]
        # groupby + unstack, not pivot_table: pivot_table(dropna=False) forms the cartesian
        # product of the index levels, and dropna=True would drop censored (NaN) samples
        wide = (m.assign(column=col).groupby([*index, "column"], dropna=False, sort=True)["value"]
                .first().unstack("column"))
        wide.columns.name = None
        return wide

    def to_anndata(self, assay: str):  # -> anndata.AnnData (import kept lazy)
        """One assay as AnnData: obs = samples, var = features (with unit), X = values,
        layers ``flag_censored`` (bool) and ``qc_pass`` (bool)."""
        import anndata as ad

        m = self.measurements(assay)
        if m.empty:
            raise UserError.single(str(self.results), f"no {assay} measurements in these results")
        m = m.assign(obs_name=m.batch_id + ":" + m.sample_id + ":" + m.panel.fillna(""))
        values = m.pivot_table(index="obs_name", columns="feature", values="value", aggfunc="first", dropna=False)
        flags = m.pivot_table(index="obs_name", columns="feature", values="flag", aggfunc="first", dropna=False)
        qc = m.pivot_table(index="obs_name", columns="feature", values="qc_pass", aggfunc="first", dropna=False)
        obs = (m.drop_duplicates("obs_name").set_index("obs_name")
               [["batch_id", "sample_id", "patient_id", "visit", "panel"]].loc[values.index])
        var = m.drop_duplicates("feature").set_index("feature")[["unit"]].loc[values.columns]
        adata = ad.AnnData(X=values.to_numpy(dtype=np.float64), obs=obs.astype(str), var=var.astype(str))
        adata.layers["flag_censored"] = flags.reindex_like(values).isin(["<LLOQ", ">ULOQ"]).to_numpy()
        adata.layers["qc_pass"] = qc.reindex_like(values).fillna(False).astype(bool).to_numpy()
        adata.uns["provenance"] = {"source": str(self.results), "batches": [b.name for b in self.batches]}
        return adata

    def change_from_baseline(self, assay: str, baseline: str = "D0") -> pd.DataFrame:
        """Each patient's value at each visit minus (and divided by) the baseline visit's.

        Censored or missing values give no change (NaN), never a guess.
        """
        m = self.measurements(assay)
        m = m[m.patient_id.notna() & m.visit.notna()]
        keys = ["patient_id", "panel", "feature"]
        base = m[m.visit == baseline][[*keys, "value"]].drop_duplicates(keys).rename(columns={"value": "baseline"})
        out = m.merge(base, on=keys, how="left")
        out["change"] = out.value - out.baseline
        out["fold_change"] = out.value / out.baseline.where(out.baseline != 0)
        return out[[*keys, "visit", "unit", "value", "baseline", "change", "fold_change"]]

    def batch_order(self) -> list[str]:
        """Batch ids in the order they were run (provenance start time, then name)."""
        started = {b.name: str(json.loads((b / "provenance.json").read_text()).get("started", ""))
                   for b in self.batches}
        return sorted(started, key=lambda b: (started[b], b))

    def control_chart(self, assay: str = "cytometry", control: str = "REFCTRL",
                      guide_runs: int = MIN_GUIDE_RUNS) -> pd.DataFrame:
        """Levey-Jennings chart of the reference control across batches, with Westgard rules.

        Each batch carries an aliquot of the same control material (``patient_id`` =
        ``control``). The first ``guide_runs`` batches (in run order) form the guide set
        giving each feature's mean and SD; every batch's value is then judged (1-2s
        warning; 1-3s, 2-2s, R-4s reject). With fewer guide batches there are no limits.

        Returns
        -------
        pandas.DataFrame
            One row per batch, panel and feature: value, mean, sd, z, rules, status
            (``in_control``, ``warning``, ``reject`` or ``no_guide_set``).
        """
        m = self.measurements(assay)
        m = m[(m.patient_id == control) & m.value.notna()]
        order = {b: i for i, b in enumerate(self.batch_order())}
        rows = []
        for (panel, feature), g in m.groupby(["panel", "feature"], sort=True):
            g = g.assign(run=g.batch_id.map(order)).sort_values("run").drop_duplicates("batch_id")
            guide = g.value.iloc[:guide_runs]
            enough = len(guide) >= guide_runs
            mean = float(guide.mean()) if enough else np.nan
            sd = float(guide.std(ddof=1)) if enough else np.nan
            rules = westgard(g.value.tolist(), mean, sd) if enough else [[] for _ in range(len(g))]
            for (_, r), broken in zip(g.iterrows(), rules, strict=True):
                status = ("no_guide_set" if not enough else "reject" if set(broken) - {"1-2s"}
                          else "warning" if broken else "in_control")
                rows.append({"batch_id": r.batch_id, "sample_id": r.sample_id, "panel": panel,
                             "feature": feature, "unit": r.unit, "value": r.value, "mean": mean, "sd": sd,
                             "z": (r.value - mean) / sd if enough and sd > 0 else np.nan,
                             "rules": ",".join(broken), "status": status})
        return pd.DataFrame(rows, columns=["batch_id", "sample_id", "panel", "feature", "unit", "value",
                                           "mean", "sd", "z", "rules", "status"])

    def rebuild(self) -> Path:
        """Rewrite ``results/study/`` (measurements and QC of every batch) from the batches."""
        study = self.results / "study"
        write_parquet(self.measurements(), study / "measurements.parquet")
        write_parquet(self.qc_metrics(), study / "qc_metrics.parquet")
        write_parquet(self.qc_flags(), study / "qc_flags.parquet")
        return study


__all__ = ["Study", "batch_dirs", "COLUMNS"]
