"""The :class:`Study`: every batch's results as one set of checked tables for analysts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.contract.measurements import censored_substitute, flag_words
from immuno.contract.qc import MIN_GUIDE_RUNS
from immuno.errors import UserError
from immuno.io import write_parquet
from immuno.study import charts, matrix, stats
from immuno.study.load import SAME, read_study

#: metric checks of kit controls written by the assay rooms, one value per plate and target
KIT_CONTROL_PREFIX = "levey_jennings_control_"


def _as_list(x: str | Sequence[str] | None) -> list[str] | None:
    return None if x is None else [x] if isinstance(x, str) else list(x)


def _unknown(what: str, asked: list[str], known: list[str], where: str) -> UserError:
    return UserError.single(where, f"no {what} {', '.join(map(repr, asked))}; "
                                   f"{what}s present: {', '.join(known) or 'none'}")


class Study:
    """All batches under a results folder, read once and checked.

    Parameters
    ----------
    results
        The results folder holding ``<batch_id>/`` sub-folders.

    Raises
    ------
    UserError
        The folder does not exist, holds no complete batch, or holds a batch that does
        not follow the measurement schema (and has no conversion rule).

    Notes
    -----
    The study is keyed by (assay, panel, feature): two panels may use one feature name
    for different measurements, and they are never pooled. Rows replaced by a re-run
    (sample sheet column ``supersedes``) are left out (see :meth:`superseded`); the same
    patient, visit, panel and feature in two batches otherwise is listed by
    :meth:`duplicates`, and the statistics refuse it.
    """

    def __init__(self, results: str | Path = "results") -> None:
        self.results = Path(results)
        self._tables = read_study(self.results)
        self.batches = [self.results / b for b in self._tables.batches["batch_id"]]
        self._con: Any = None

    # ----- tables -------------------------------------------------------------------
    def _select(self, assay: str | None = None, feature: str | Sequence[str] | None = None,
                panel: str | Sequence[str] | None = None, controls: bool = True) -> pd.DataFrame:
        m = self._tables.measurements
        where = str(self.results)
        if assay is not None:
            if assay not in set(m.assay):
                raise _unknown("assay", [assay], sorted(set(m.assay)), where)
            m = m[m.assay == assay]
        panels = _as_list(panel)
        if panels is not None:
            bad = [p for p in panels if p not in set(m.panel)]
            if bad:
                raise _unknown("panel", bad, sorted(set(m.panel)), where + (f" ({assay})" if assay else ""))
            m = m[m.panel.isin(panels)]
        features = _as_list(feature)
        if features is not None:
            bad = [f for f in features if f not in set(m.feature)]
            if bad:
                known = m.groupby("feature")["panel"].agg(lambda s: "/".join(sorted(set(s))))
                listed = [f"{f} ({p})" for f, p in known.items() if ":" not in f] or list(known.index)
                raise _unknown("feature", bad, listed, where + (f" ({assay})" if assay else ""))
            m = m[m.feature.isin(features)]
        if not controls:
            m = m[~m.control]
        return m.reset_index(drop=True)

    def measurements(self, assay: str | None = None, feature: str | list[str] | None = None,
                     qc_pass_only: bool = False, panel: str | list[str] | None = None,
                     controls: bool = True) -> pd.DataFrame:
        """The measurement table of every batch (re-runs applied).

        Parameters
        ----------
        assay
            Keep one assay (``cytometry``, ``chemokine``, ``chimerism``).
        feature
            Keep one feature or a list of features.
        qc_pass_only
            Drop rows that failed QC.
        panel
            Keep one panel or a list of panels.
        controls
            Keep the control material's rows (``control`` column True).

        Raises
        ------
        UserError
            A name that does not exist (the error lists what does).
        """
        m = self._select(assay, feature, panel, controls)
        return m[m.qc_pass].reset_index(drop=True) if qc_pass_only else m

    def qc_metrics(self) -> pd.DataFrame:
        """Every QC metric of every batch."""
        return self._tables.qc_metrics

    def qc_flags(self) -> pd.DataFrame:
        """Every QC flag of every batch."""
        return self._tables.qc_flags

    def batch_table(self) -> pd.DataFrame:
        """One row per batch: id, start time, schema version (and what it was converted
        from), assays."""
        return self._tables.batches.copy()

    def duplicates(self) -> pd.DataFrame:
        """Measurements of the same patient, visit, assay, panel and feature held by more
        than one batch, with the batches and samples (empty when there are none)."""
        return self._tables.duplicates.copy()

    def superseded(self) -> pd.DataFrame:
        """Rows left out because a re-run replaced them (``superseded_by`` names it)."""
        return self._tables.superseded.copy()

    def features(self, assay: str | None = None) -> pd.DataFrame:
        """Every (assay, panel, feature) with its unit and number of values."""
        m = self._select(assay)
        return (m.groupby(["assay", "panel", "feature", "unit"], sort=True).size()
                .rename("n").reset_index())

    # ----- SQL ----------------------------------------------------------------------
    def sql(self, query: str) -> pd.DataFrame:
        """Run SQL (DuckDB) over the views ``measurements``, ``qc_metrics``, ``qc_flags``,
        ``batches``, ``duplicates`` and ``superseded``.

        One connection stays open for the study's life; the views point at the tables
        read (and checked) once, so a query never re-reads the Parquet files.
        """
        if self._con is None:
            import duckdb  # only when SQL is asked for

            self._con = duckdb.connect()
            for name, df in (("measurements", self._tables.measurements), ("qc_metrics", self._tables.qc_metrics),
                             ("qc_flags", self._tables.qc_flags), ("batches", self._tables.batches),
                             ("duplicates", self._tables.duplicates), ("superseded", self._tables.superseded)):
                self._con.register(name, df)
        return self._con.execute(query).df()

    def close(self) -> None:
        """Close the SQL connection (it reopens on the next :meth:`sql`)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- matrices -----------------------------------------------------------------
    def _one_panel(self, assay: str, panel: str | None) -> str:
        panels = sorted(set(self._select(assay).panel))
        if panel is None:
            if len(panels) > 1:
                raise UserError.single(str(self.results), f"{assay} has {len(panels)} panels ({', '.join(panels)}), "
                                       "whose samples and features differ; choose one with panel=...")
            return panels[0]
        if panel not in panels:
            raise _unknown("panel", [panel], panels, f"{self.results} ({assay})")
        return panel

    def _default_features(self, m: pd.DataFrame) -> list[str]:
        # per-population statistics are named "<population>:<statistic>"; ask for them by name
        return sorted({f for f in m.feature if ":" not in f}) or sorted(set(m.feature))

    def wide(self, assay: str, unit: bool = False, panel: str | None = None,
             feature: str | list[str] | None = None, controls: bool = False) -> pd.DataFrame:
        """Samples x features of one assay (index batch_id, sample_id, patient_id, visit).

        Columns are feature names when one panel is chosen, ``<panel>/<feature>`` when
        the assay's panels are shown together, so two measurements never share a column.
        With ``unit=True`` the column names carry the unit, e.g. ``Th1 [% of CD4+]``.
        Values are as stored (NaN where censored; see :meth:`to_anndata` for numbers).
        """
        m = self._select(assay, feature, panel, controls)
        several = m.panel.nunique() > 1
        col = (m.panel + "/" if several else "") + m.feature + (" [" + m.unit + "]" if unit else "")
        index = ["batch_id", "sample_id", "patient_id", "visit"]
        wide = m.assign(column=col).pivot(index=index, columns="column", values="value")
        wide.columns.name = None
        order = sorted(wide.index, key=lambda i: (i[2], matrix.visit_sort_key(i[3]), i[0], i[1]))
        return wide.loc[order]

    def to_anndata(self, assay: str, panel: str | None = None, feature: str | list[str] | None = None,
                   controls: bool = False, missing: str = "move"):  # -> anndata.AnnData
        """One panel as AnnData for scanpy: obs = samples, var = features.

        ``X`` holds the values with censored ones at a substitute (``<LLOQ`` as LLOQ/2,
        ``>ULOQ`` as ULOQ); layers ``value_raw`` (as stored), ``censored`` and
        ``qc_pass``; obs has categorical ids, an ordered categorical ``visit``,
        ``control`` and ``duplicate``; var has ``panel``, ``unit``, ``n_censored``,
        ``n_failing_qc``. Features without a value for every sample are moved to
        ``obsm["missing_features"]`` (``missing="keep"`` keeps them in X as NaN).

        Parameters
        ----------
        assay
            The assay.
        panel
            The panel; required when the assay has several.
        feature
            Features to include (default: every feature except per-population
            statistics, named ``<population>:<statistic>``).
        controls
            Include the control material's samples.
        missing
            ``"move"`` or ``"keep"`` (see above).
        """
        panel = self._one_panel(assay, panel)
        m = self._select(assay, feature, panel, controls)
        features = _as_list(feature) or self._default_features(m)
        m = m[m.feature.isin(features)]
        if m.empty:
            raise UserError.single(str(self.results), f"no {assay} samples of panel {panel} to show "
                                   f"(controls={controls})")
        dup = self._tables.duplicates
        dup_obs = set()
        if len(dup):
            hit = m.merge(dup[SAME], on=SAME)
            dup_obs = set(matrix.obs_name(hit.batch_id, hit.sample_id))
        prov = {"source": str(self.results), "batches": [b.name for b in self.batches], "assay": assay}
        return matrix.to_anndata(m, panel, [f for f in features if f in set(m.feature)], missing, prov, dup_obs)

    # ----- longitudinal -------------------------------------------------------------
    def _patients_once(self, m: pd.DataFrame, what: str) -> pd.DataFrame:
        """Patient rows, refusing any measurement held more than once."""
        m = m[~m.control]
        n = m.groupby(SAME)["sample_id"].transform("size")
        if (n > 1).any():
            d = m[n > 1].groupby(SAME, sort=True).agg(
                where=("batch_id", lambda s: ", ".join(sorted(set(s)))),
                samples=("sample_id", lambda s: ", ".join(sorted(set(s))))).reset_index()
            lines = [f"{r.patient_id} {r.visit} {r.assay}/{r.panel}/{r.feature}: batches {r.where}, samples {r.samples}"
                     for r in d.head(20).itertuples()]
            more = f" (and {len(d) - 20} more)" if len(d) > 20 else ""
            raise UserError.single(str(self.results),
                                   f"{what} needs one value per patient, visit and feature; {len(d)} are held "
                                   f"more than once{more}:\n  " + "\n  ".join(lines),
                                   hint="Mark the re-run in its sample sheet (column supersedes: <batch>), or "
                                        "remove the batch that is wrong; study.duplicates() lists them all.")
        return m

    def change_from_baseline(self, assay: str, baseline: str = "D0", panel: str | None = None,
                             feature: str | list[str] | None = None) -> pd.DataFrame:
        """Each patient's value at each visit minus (and divided by) the baseline visit's.

        Censored or missing values give no change (NaN), never a guess; see
        :meth:`compare_visits` for statistics with a stated censoring rule. A
        measurement held by two batches is refused (see :meth:`duplicates`).
        """
        m = self._patients_once(self._select(assay, feature, panel, controls=False), "change_from_baseline")
        keys = ["patient_id", "panel", "feature"]
        base = m[m.visit == baseline][[*keys, "value"]].rename(columns={"value": "baseline"})
        out = m.merge(base, on=keys, how="left")
        out["change"] = out.value - out.baseline
        out["fold_change"] = out.value / out.baseline.where(out.baseline != 0)
        return out[["assay", *keys, "visit", "unit", "value", "baseline", "change", "fold_change"]]

    def trajectories(self, assay: str | None = None, feature: str | list[str] | None = None,
                     panel: str | list[str] | None = None) -> pd.DataFrame:
        """Per-patient values by visit (long): ``used`` is the value with censored ones at
        their substitute (``censored`` True), NaN for values failing QC. Default features:
        every feature except per-population statistics (``<population>:<statistic>``)."""
        m = self._select(assay, feature, panel, controls=False)
        if feature is None:
            m = m[m.feature.isin(self._default_features(m))]
        m = self._patients_once(m, "trajectories")
        used = censored_substitute(m["value"], m["flag"], m["lower"], m["upper"]).where(m["qc_pass"])
        cens = m["flag"].map(lambda f: bool({"<LLOQ", ">ULOQ"} & set(flag_words(f)))) & m["value"].isna()
        out = m.assign(used=used, censored=cens)
        visits = matrix.ordered_visits(out.visit)
        out["visit"] = pd.Categorical(out.visit, categories=visits, ordered=True)
        return out.sort_values(["assay", "panel", "feature", "patient_id", "visit"]).reset_index(drop=True)

    def compare_visits(self, feature: str | list[str] | None = None, assay: str | None = None,
                       panel: str | list[str] | None = None, baseline: str = "D0",
                       visits: Sequence[str] | None = None, censored: str = "substitute",
                       level: float = 0.95) -> pd.DataFrame:
        """Paired change from ``baseline`` to each later visit, per feature.

        Median change, Wilcoxon signed-rank test, Hodges-Lehmann estimate with its
        ``level`` confidence interval, number of pairs, and Benjamini-Hochberg adjusted
        p-values across the features of each contrast; censored values by the rule in
        :mod:`immuno.study.stats`. Default features: every feature except per-population
        statistics (``<population>:<statistic>``).

        Raises
        ------
        UserError
            Unknown names, or a measurement held by more than one batch (listed).
        """
        m = self._select(assay, feature, panel, controls=False)
        if feature is None:
            m = m[m.feature.isin(self._default_features(m))]
        m = self._patients_once(m, "compare_visits")
        known = matrix.ordered_visits(m.visit)
        if baseline not in known:
            raise _unknown("visit", [baseline], known, str(self.results))
        visits = list(visits) if visits is not None else [v for v in known if v != baseline]
        bad = [v for v in visits if v not in known]
        if bad:
            raise _unknown("visit", bad, known, str(self.results))
        return stats.paired_change(m, baseline, visits, censored, level)

    # ----- QC across batches --------------------------------------------------------
    def batch_order(self) -> list[str]:
        """Batch ids in the order they were run (provenance start time, then name)."""
        return self._tables.batches["batch_id"].tolist()

    def control_chart(self, assay: str = "cytometry", control: str | None = None,
                      guide_runs: int = MIN_GUIDE_RUNS, feature: str | list[str] | None = None) -> charts.Chart:
        """Levey-Jennings chart of the reference control across batches, with Westgard rules.

        Each batch carries an aliquot of the same control material (rows with ``control``
        True; ``control`` narrows to one patient_id code). The first ``guide_runs``
        batches in run order form each feature's guide set (mean, SD); every batch is
        then judged (1-2s warning; 1-3s, 2-2s, R-4s reject); with fewer guide batches
        there are no limits (status ``no_guide_set``).

        Returns
        -------
        Chart
            ``.table`` (one row per batch, panel and feature: value, mean, sd, z, rules,
            status) and ``.figure``.
        """
        m = self._select(assay, feature)
        m = m[m.control & m.value.notna()]
        if control is not None:
            m = m[m.patient_id == control]
        if feature is None:
            m = m[m.feature.isin(self._default_features(m))] if len(m) else m
        series = m.panel + " " + m.feature
        table = charts.levey_jennings(m.assign(series=series), self.batch_order(), guide_runs)
        title = f"{assay}: reference control across batches"
        return charts.Chart(table, charts.chart_figure(table, self.batch_order(), title))

    def kit_control_chart(self, assay: str = "chemokine", guide_runs: int = MIN_GUIDE_RUNS) -> charts.Chart:
        """Levey-Jennings chart of the kit controls across batches (one value per plate,
        control and analyte, from the assay's ``levey_jennings_control_*`` QC metrics)."""
        q = self._tables.qc_metrics
        q = q[(q.assay == assay) & q.check.fillna("").str.startswith(KIT_CONTROL_PREFIX) & q.value.notna()]
        control = q.check.str.slice(len(KIT_CONTROL_PREFIX))
        values = pd.DataFrame({"batch_id": q.batch_id, "sample_id": control, "series": control + " " + q.target,
                               "panel": q.panel, "feature": q.target, "unit": "", "value": q.value})
        units = self._tables.measurements.drop_duplicates(["assay", "feature"]).set_index(["assay", "feature"])["unit"]
        values["unit"] = [units.get((assay, f), "") for f in values.feature]
        table = charts.levey_jennings(values, self.batch_order(), guide_runs)
        return charts.Chart(table, charts.chart_figure(table, self.batch_order(), f"{assay}: kit controls across batches"))

    # ----- study folder -------------------------------------------------------------
    def rebuild(self, dashboard: bool = True) -> Path:
        """Rewrite ``results/study/`` from the batches: the measurement and QC tables,
        the duplicates, the statistics and (by default) ``dashboard.html``."""
        study = self.results / "study"
        write_parquet(self._tables.measurements, study / "measurements.parquet")
        write_parquet(self._tables.qc_metrics, study / "qc_metrics.parquet")
        write_parquet(self._tables.qc_flags, study / "qc_flags.parquet")
        write_parquet(self._tables.duplicates, study / "duplicates.parquet")
        if dashboard:
            # matplotlib, jinja2: only when the dashboard is rebuilt, never for a notebook
            from immuno.report.dashboard import build_dashboard

            build_dashboard(self, study / "dashboard.html")
        return study
