"""GeneMapper, GeneMapper ID-X and GeneMarker STR exports, as labs produce them.

One reader for every layout met in practice, returning one long table of peaks:

* the Sample/Peak table (one row per peak: ``Allele``, ``Size``, ``Height``, ``Area``);
* the genotypes table (one row per sample and marker: ``Allele 1..n`` with ``Size n``,
  ``Height n``, ``Area n`` or ``Peak Area n``; GeneMapper ID-X writes ``Allele.1`` and
  pads unused columns with ``NA``; GeneMapper 4 adds ``Data Point n`` and the process
  quality values ``AE``, ``OMIT``, ``OS``, ``SHP``, ``SPU``, ``XTLK``, ``GQ`` ...);
* a genotype list without peaks (``Allele 1``, ``Allele 2`` only), the way reference
  profiles are kept: homozygotes entered once or twice, a ``Remark`` column.

``OL`` (off-ladder) peaks are kept with their size; deciding what they are is the
estimator's job. Decimal commas are read (``128,45`` in a ``;``-delimited export); a
file mixing commas and points is refused. A column that looks like peak areas or
heights under another name is refused with its name rather than silently ignored.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.chimerism.common.tables import delimited, file_decimal_style, norm, numbers, pick
from immuno.errors import UserError

PEAK_COLUMNS = [
    "sample_name",
    "sample_file",
    "marker",
    "allele",
    "size",
    "height",
    "area",
    "dye",
    "quality",
]
_STEM = re.compile(r"\.(fsa|hid|ab1)$", re.IGNORECASE)
_SAMPLE = ("Sample File Name", "Sample File", "Sample Name", "Sample.Name", "SampleName", "Sample")
_MARKER = ("Marker", "Locus")
#: the names under which exports carry areas and heights (normalised, numbered or not)
_AREA = ("area", "peakarea")
_HEIGHT = ("height", "peakheight")
#: process quality values that set a locus aside or say something about its peaks
_PQV_BOOL = ("OMIT", "AE")
_PQV_FLAGS = {
    "OS": "off-scale",
    "SHP": "sharp peak (spike)",
    "SPU": "spectral pull-up",
    "XTLK": "crosstalk",
    "SPA": "single peak artefact",
    "SP": "split peak",
    "BD": "broad peak",
    "OBA": "out-of-bin allele",
    "PHR": "peak height ratio",
    "LPH": "low peak height",
    "AN": "allele number",
    "BIN": "out of bin",
}
#: GeneMapper's genotype quality below which it fails a genotype
GQ_FAIL = 0.25


def allele_label(value: str) -> str:
    """Canonical allele designation: ``12``, ``9.3``, ``X``, ``OL``; ``12.0`` becomes ``12``."""
    value = str(value).strip()
    try:
        num = float(value.replace(",", "."))
    except ValueError:
        up = value.upper()
        return up if up in ("X", "Y", "OL") else value
    if not math.isfinite(num):
        return value
    return str(int(num)) if num == int(num) else f"{num:.1f}"


def read_genemapper(path: str | Path) -> pd.DataFrame:
    """Read a GeneMapper / GeneMapper ID-X / GeneMarker STR export.

    Parameters
    ----------
    path
        A tab-, comma- or semicolon-delimited export: Sample/Peak table, genotypes table,
        or a genotype list without peaks (reference profiles).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PEAK_COLUMNS`, one row per peak (or per called allele of a
        genotype list). ``sample_name`` is the ``Sample Name`` (or the sample file name
        without ``.fsa``/``.hid``), ``sample_file`` the file name as exported. ``height``
        and ``size`` are NaN for a genotype list, ``area`` is NaN when the export has no
        area column, ``dye`` is the dye letter when exported (``Dye`` or ``Dye/Sample
        Peak``), ``quality`` the row's process quality values worth knowing (``OMIT``,
        ``GQ 0.12``, ``spectral pull-up`` ...), empty when none. Samples listed in the
        export without any peak are named in ``attrs["samples_without_peaks"]``.

    Raises
    ------
    UserError
        No allele column; a column named like areas or heights but not as expected; a
        number that cannot be read; decimal commas and points mixed.
    """
    path = Path(path)
    df = delimited(path)
    by_norm = {norm(c): c for c in df.columns}
    ids = pick(
        df,
        path,
        {
            "sample_file": _SAMPLE,
            "sample_name": ("Sample Name", "Sample.Name", "SampleName"),
            "marker": _MARKER,
            "dye": ("Dye", "Dye/Sample Peak"),
        },
        optional=("sample_name", "dye"),
    )
    if "dye" in ids:
        ids["dye"] = ids["dye"].str.split(",").str[0].str.strip().str.upper()
    ids["quality"] = _quality(df)
    ids["_row"] = np.arange(1, len(df) + 1)
    if "allele" in by_norm:
        numbered = {"": "allele"}
    elif any(re.fullmatch(r"allele\d+", k) for k in by_norm):
        numbered = {
            str(i): f"allele{i}"
            for i in sorted(int(k[6:]) for k in by_norm if re.fullmatch(r"allele\d+", k))
        }
    else:
        raise UserError.single(
            str(path),
            f"no 'Allele' or 'Allele 1' column; the file has: {', '.join(df.columns)}",
            hint="Export the Sample/Peak table or the genotypes table from GeneMapper.",
        )
    columns = {i: _peak_columns(by_norm, i) for i in numbered}
    _refuse_renamed(df, path, columns)
    if "" in columns and not columns[""]["height"]:
        # one row per peak always carries its height; only a numbered genotype list may not
        raise UserError.single(
            str(path),
            f"missing column height (any of: Height, Peak Height); the file has: "
            f"{', '.join(df.columns)}",
            hint="Export the Sample/Peak table with heights, or a genotypes table.",
        )
    sizes = [c["size"] for c in columns.values() if c.get("size")]
    style = file_decimal_style(df, sizes, path)
    parts = []
    for i, col in columns.items():
        part = ids.copy()
        part["allele"] = df[by_norm[numbered[i]]].astype(str).str.strip()
        for key in ("size", "height", "area"):
            part[key] = df[col[key]].astype(str).str.strip() if col.get(key) else ""
        parts.append(part)
    peaks = pd.concat(parts, ignore_index=True)
    if "sample_name" not in peaks:
        peaks["sample_name"] = ""
    stem = peaks["sample_file"].str.replace(_STEM, "", regex=True)
    peaks["sample_name"] = peaks["sample_name"].where(peaks["sample_name"] != "", stem)
    listed = set(peaks["sample_name"])
    peaks = peaks[~peaks["allele"].str.lower().isin(("", "na", "nan"))].reset_index(drop=True)
    peaks["allele"] = peaks["allele"].map(allele_label)
    calls_only = not any(c.get("height") for c in columns.values())
    for key in ("size", "height", "area"):
        label = next((c[key] for c in columns.values() if c.get(key)), None)
        if label is None:
            peaks[key] = np.nan
            continue
        peaks[key] = numbers(
            peaks[key],
            path,
            re.sub(r"\W?\d+$", "", label) or label,
            allow_missing=key != "height",
            style=style,
            rows=peaks["_row"].to_numpy(),
        )
    if "dye" not in peaks:
        peaks["dye"] = ""
    if calls_only:
        # a genotype list: each allele once (homozygotes are often entered twice)
        peaks = peaks.drop_duplicates(["sample_name", "marker", "allele"])
    out = (
        peaks[PEAK_COLUMNS]
        .sort_values(["sample_name", "marker", "size", "allele"], kind="stable", na_position="last")
        .reset_index(drop=True)
    )
    # samples in the export without a single peak (a failed run, a negative control)
    out.attrs["samples_without_peaks"] = sorted(listed - set(out["sample_name"]))
    return out


def _peak_columns(by_norm: dict[str, str], i: str) -> dict[str, str | None]:
    """The size, height and area columns that go with allele column ``i`` ('' for a peak table)."""

    def find(names: tuple[str, ...]) -> str | None:
        return next((by_norm[n + i] for n in names if n + i in by_norm), None)

    return {"size": find(("size",)), "height": find(_HEIGHT), "area": find(_AREA)}


def _refuse_renamed(
    df: pd.DataFrame, path: Path, columns: dict[str, dict[str, str | None]]
) -> None:
    """A column that looks like areas or heights but is not read must not be ignored silently."""
    used = {c for col in columns.values() for c in col.values() if c}
    for key, names in (("area", _AREA), ("height", _HEIGHT)):
        for c in df.columns:
            n = norm(c)
            if c in used or key not in n:
                continue
            if re.fullmatch(rf"(?:{'|'.join(names)})\d*", n):
                continue  # a numbered column beyond the alleles in use
            raise UserError.single(
                f"{path}: column {c!r}",
                f"looks like peak {key}s but is not named as GeneMapper names them "
                f"({' or '.join(repr(x.title()) for x in ('Area', 'Peak Area') if key == 'area') or repr('Height')}"
                f"{', numbered for a genotypes table' if len(columns) > 1 or '' not in columns else ''}); "
                f"rename it{', or remove it to estimate from heights' if key == 'area' else ''}",
            )


def _quality(df: pd.DataFrame) -> pd.Series:
    """Per-row process quality values worth knowing, as text (empty when none)."""
    by_norm = {norm(c): c for c in df.columns}
    notes: list[list[str]] = [[] for _ in range(len(df))]
    for flag in _PQV_BOOL:
        col = by_norm.get(flag.lower())
        if col is not None:
            for i, v in enumerate(df[col].astype(str).str.strip().str.upper()):
                if v in ("TRUE", "1", "YES") and flag == "OMIT":
                    notes[i].append("OMIT")
    for flag, what in _PQV_FLAGS.items():
        col = by_norm.get(flag.lower())
        if col is None:
            continue
        values = pd.to_numeric(df[col].astype(str).str.strip(), errors="coerce")
        for i, v in enumerate(values):
            # GeneMapper writes 0 for pass, -1/-2 where not evaluated, larger for check/low quality
            if v > 0:
                notes[i].append(what)
    gq = by_norm.get("gq")
    if gq is not None:
        values = pd.to_numeric(df[gq].astype(str).str.strip(), errors="coerce")
        for i, v in enumerate(values):
            if 0 <= v < 1:
                notes[i].append(f"GQ {v:.2f}")
    return pd.Series(["; ".join(n) for n in notes], index=df.index, dtype=str)
