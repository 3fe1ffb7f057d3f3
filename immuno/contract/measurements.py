"""The measurement table: the one tidy table every assay writes (docs/architecture.md, 4.2).

One row per (batch, sample, assay, panel, feature). ``value`` is numeric (NaN where no
number exists, e.g. a censored concentration); ``flag`` carries words from
:data:`FLAGS`; ``lower``/``upper`` hold an interval where one exists (for a censored
value, the limit it lies beyond). Values are stored unrounded.

The contract is enforced, not described: :func:`measurement_table` normalises a room's
rows and checks them against :data:`SCHEMA` before anything is written, and the study
checks every batch's file against the same schema when it reads it
(:func:`check_measurements`). The rules:

- text columns are never missing: "no flag", "no visit" and "no panel" are all spelled
  ``""``, so ``flag == ""`` selects clean values in pandas and SQL alike;
- ``flag`` is ``""`` or words of :data:`FLAGS` joined by ``";"`` (sorted); a word may
  carry a detail after ``":"`` (``censored_inputs:CCL17+IL10``);
- ``qc_pass`` is derived by one rule: it is False exactly when a flag word is *failing*
  (:data:`FAILING`). A room that marks a value failed without a failing word gets
  ``qc_failed`` (the reason is in ``qc/flags.parquet``); a value that is NaN without any
  word explaining why gets ``no_value``;
- every row has a unit, and one (assay, panel, feature) has one unit;
- ``control`` is True for the batch's control material (the reference control): those
  rows have no visit, every other row has a patient and a visit;
- ``lower <= upper`` where both exist.

Results of an older schema version are converted on reading by
:func:`upgrade_measurements` (the rule is stated there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from immuno.errors import Problem, UserError

#: the columns of measurements.parquet, in order
COLUMNS: list[str] = [
    "batch_id",
    "sample_id",
    "patient_id",
    "visit",
    "assay",
    "panel",
    "feature",
    "value",
    "unit",
    "lower",
    "upper",
    "flag",
    "qc_pass",
    "control",
]
#: the columns that identify a row
KEY: list[str] = ["batch_id", "sample_id", "assay", "panel", "feature"]

#: the flag vocabulary: word -> (failing, meaning). A failing word sets ``qc_pass`` False.
FLAGS: dict[str, tuple[bool, str]] = {
    "<LLOQ": (False, "censored below the lower limit of quantification (upper = LLOQ)"),
    ">ULOQ": (False, "censored above the upper limit of quantification (lower = ULOQ)"),
    "detected": (False, "donor signal above the limit of detection"),
    "not_detected": (False, "donor signal not above the limit of detection"),
    "censored_inputs": (False, "derived from inputs of which some were censored and substituted"),
    "no_events": (True, "the denominator population has no events: no frequency"),
    "undefined": (True, "a ratio over zero or over a missing value"),
    "incomplete": (True, "a derived value whose inputs are not all quantified"),
    "failed": (True, "the data file could not be processed"),
    "curve_failed": (True, "the standard curve failed its acceptance rules"),
    "no_wells": (True, "every replicate well was excluded"),
    "not_estimated": (True, "the donor fraction could not be estimated"),
    "qc_failed": (True, "the sample or value failed a QC check (reason in qc/flags.parquet)"),
    "no_value": (True, "no number and no other flag saying why"),
}
#: the words that make ``qc_pass`` False
FAILING: frozenset[str] = frozenset(w for w, (failing, _) in FLAGS.items() if failing)
#: the censoring words, and the substitute rule :func:`censored_substitute` applies
CENSORED: tuple[str, str] = ("<LLOQ", ">ULOQ")

_STRING_COLUMNS = [
    "batch_id",
    "sample_id",
    "patient_id",
    "visit",
    "assay",
    "panel",
    "feature",
    "unit",
    "flag",
]
_FLOAT_COLUMNS = ["value", "lower", "upper"]
_BOOL_COLUMNS = ["qc_pass", "control"]


def flag_words(flag: str) -> list[str]:
    """The words of a flag cell (``""`` has none); details after ``":"`` are dropped."""
    return [w.split(":", 1)[0] for w in str(flag).split(";") if w]


def _normalise_flag(flag: Any, failed: bool, missing: bool) -> str:
    raw = (
        ""
        if flag is None or (isinstance(flag, float) and np.isnan(flag)) or flag is pd.NA
        else str(flag)
    )
    words = sorted({w.strip() for w in raw.split(";") if w.strip()})
    bases = {w.split(":", 1)[0] for w in words}
    if failed and not bases & FAILING:
        words.append("qc_failed")
    # a NaN value must say why it has no number (censored, failed, not estimated ...)
    if missing and not bases & (FAILING | set(CENSORED)) and "qc_failed" not in words:
        words.append("no_value")
    return ";".join(sorted(words))


def _schema():
    import pandera.pandas as pa  # pandera, slow to import: only when a table is checked

    def known_words(s: pd.Series) -> pd.Series:
        return s.map(lambda f: all(w in FLAGS for w in flag_words(f)))

    text = {c: pa.Column("string", nullable=False) for c in _STRING_COLUMNS}
    text["flag"] = pa.Column(
        "string",
        pa.Check(
            known_words,
            element_wise=False,
            error=f"flag words must be in the vocabulary {sorted(FLAGS)}",
        ),
        nullable=False,
    )
    for c in ("batch_id", "sample_id", "assay", "feature", "unit"):
        text[c] = pa.Column(
            "string",
            pa.Check.str_length(min_value=1, error=f"{c} must not be empty"),
            nullable=False,
        )
    checks = [
        pa.Check(
            lambda d: (
                d["qc_pass"]
                == ~d["flag"].map(lambda f: bool(set(flag_words(f)) & FAILING)).astype(bool)
            ),
            error="qc_pass must be False exactly when a flag word is failing",
        ),
        pa.Check(
            lambda d: d["value"].notna() | (d["flag"] != ""),
            error="a missing value needs a flag saying why",
        ),
        pa.Check(lambda d: ~(d["lower"] > d["upper"]), error="lower must not exceed upper"),
        pa.Check(lambda d: ~d["control"] | (d["visit"] == ""), error="control rows have no visit"),
        pa.Check(
            lambda d: d["control"] | ((d["visit"] != "") & (d["patient_id"] != "")),
            error="rows of patient samples need a patient_id and a visit",
        ),
        pa.Check(
            lambda d: d.groupby(["assay", "panel", "feature"])["unit"].transform("nunique") <= 1,
            error="one (assay, panel, feature) has one unit",
        ),
        pa.Check(lambda d: ~d.duplicated(KEY, keep=False), error=f"rows share a key {KEY}"),
    ]
    columns = {
        **text,
        **{c: pa.Column("float64", nullable=True) for c in _FLOAT_COLUMNS},
        **{c: pa.Column("bool", nullable=False) for c in _BOOL_COLUMNS},
    }
    return pa.DataFrameSchema(
        {c: columns[c] for c in COLUMNS}, checks=checks, strict=True, ordered=True
    )


_SCHEMA = None


def schema():
    """The pandera schema of the measurement table (built once, on first use)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = _schema()
    return _SCHEMA


def schema_problems(df: pd.DataFrame, limit: int = 10) -> list[str]:
    """Every way ``df`` breaks the measurement schema, as sentences (empty when it holds).

    Parameters
    ----------
    df
        A measurement table.
    limit
        Roughly how many problems to list (the first failing row of each is quoted).
    """
    import pandera.errors as pe  # pandera: only when a table is checked (see _schema)

    try:
        schema().validate(df, lazy=True)
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        # table-wide checks report one failure per column and row: count rows once
        column = cases["column"].where(cases["schema_context"] == "Column", "table").fillna("table")
        out = []
        for (col, check), g in cases.groupby([column, cases["check"].astype(str)], sort=True):
            rows = sorted(set(g["index"].dropna().astype(int)))
            example = ""
            if rows and isinstance(df.index, pd.RangeIndex) and set(KEY) <= set(df.columns):
                example = f", e.g. {df.loc[rows[0], KEY].tolist()}"
            out.append(f"{col}: {check} ({len(rows) or len(g)} row(s){example})")
        return out[: limit * 3]
        return out
    return []


def measurement_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise a room's rows into the measurement table, and check the schema.

    Missing optional columns (``lower``, ``upper``, ``flag``, ``unit``, ``panel``,
    ``patient_id``, ``visit``) are added empty; ``qc_pass`` given by the room (default
    True) marks values the room failed, and is then derived from the flags by the one
    rule (see the module docstring); ``control`` defaults to "the row has no visit"
    (the sample sheet allows an empty visit only for batch controls). Rows are sorted by
    the key so that the same inputs always give byte-identical files.

    Parameters
    ----------
    rows
        A DataFrame or an iterable of dicts with at least ``sample_id``, ``assay``,
        ``feature`` and ``value``.

    Returns
    -------
    pandas.DataFrame
        The table with exactly :data:`COLUMNS`.

    Raises
    ------
    ValueError
        If a required column is missing or the schema does not hold (a programming
        error in the room that wrote the rows, not a user error).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("sample_id", "assay", "feature", "value"):
        if col not in df.columns and len(df):
            raise ValueError(f"measurement rows need a {col!r} column")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = True if col == "qc_pass" else np.nan if col in _FLOAT_COLUMNS else pd.NA
    df = df[COLUMNS].copy()
    for col in _FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
    for col in _STRING_COLUMNS:
        df[col] = df[col].astype("string").fillna("").str.strip()
    room_pass = (
        df["qc_pass"].astype("boolean").fillna(True).astype(bool)
    )  # unsaid: the room did not fail it
    df["flag"] = pd.array(
        [
            _normalise_flag(f, not ok, missing)
            for f, ok, missing in zip(df["flag"], room_pass, df["value"].isna(), strict=True)
        ],
        dtype="string",
    )
    df["qc_pass"] = ~df["flag"].map(lambda f: bool(set(flag_words(f)) & FAILING)).astype(bool)
    given = df["control"].astype("boolean")
    df["control"] = given.fillna(pd.Series(df["visit"] == "", index=df.index)).astype(bool)
    df = df.sort_values(KEY, kind="stable").reset_index(drop=True)
    problems = schema_problems(df)
    if problems:
        raise ValueError("measurement rows break the schema: " + "; ".join(problems))
    return df


def check_measurements(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check a table read from disk against the schema (the study's read-side check).

    Raises
    ------
    immuno.errors.UserError
        Naming ``where`` and every rule the table breaks.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    problems = [f"missing column(s) {missing}"] if missing else schema_problems(df)
    if problems:
        raise UserError(
            [Problem(where, p) for p in problems],
            hint="The file does not follow the measurement schema; re-run that batch with this immuno.",
        )
    return df


def upgrade_measurements(df: pd.DataFrame, version: str) -> pd.DataFrame:
    """Convert a measurement table of an older results schema to the current one.

    Schema 1.0 (immuno 0.1) spelt "no flag" both as ``""`` and as missing, set
    ``qc_pass`` by each room's own rule and had no ``control`` column. The conversion:
    missing text becomes ``""``; a value the room failed keeps ``qc_pass`` False through
    the word ``qc_failed``; a NaN value without a flag gets ``no_value``; ``qc_pass`` is
    then re-derived from the flags; ``control`` is True where the visit is empty (only
    batch controls had no visit). Values, units and intervals are unchanged.

    Parameters
    ----------
    df
        The table as read from ``measurements.parquet``.
    version
        Its ``schema_version`` from ``provenance.json``.

    Returns
    -------
    pandas.DataFrame
        A table of the current schema.
    """
    if version != "1.0":
        raise ValueError(f"no conversion from measurement schema {version!r}")
    return measurement_table(df.drop(columns=["control"], errors="ignore"))


def empty_measurements() -> pd.DataFrame:
    """An empty table with the measurement columns and dtypes."""
    return measurement_table(pd.DataFrame(columns=COLUMNS))


def concat_measurements(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-assay tables into one normalised measurement table."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return empty_measurements()
    return measurement_table(pd.concat(parts, ignore_index=True))


def censored_substitute(
    value: pd.Series, flag: pd.Series, lower: pd.Series, upper: pd.Series
) -> pd.Series:
    """Values with censored ones replaced by a stated substitute.

    ``<LLOQ`` becomes LLOQ/2 (the row's ``upper``, the limit it lies below, halved);
    ``>ULOQ`` becomes ULOQ (the row's ``lower``). Every other value is unchanged (NaN
    stays NaN). The substitute is for analyses that need a number (PCA, rank tests);
    the stored table never holds it.
    """
    words = flag.fillna("").map(lambda f: set(flag_words(f)))
    below = words.map(lambda w: "<LLOQ" in w).astype(bool) & value.isna()
    above = words.map(lambda w: ">ULOQ" in w).astype(bool) & value.isna()
    out = value.astype("float64").copy()
    out[below] = upper[below] / 2.0
    out[above] = lower[above]
    return out
