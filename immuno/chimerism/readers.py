"""Readers for chimerism genotyping exports, each returning one tidy long table.

Every reader names the file and the missing column when an export does not look as
expected, and accepts tab-, comma- or semicolon-delimited text (labs re-save exports in
Excel, which changes the delimiter).

* GeneMapper "Sample/Peak" export (one row per peak) and the genotype-table variant
  (``Allele 1..n``, ``Size 1..n``, ``Height 1..n``, ``Area 1..n`` per row).
* NGS marker counts: Devyser-style ``#SNPID TOT_HITS REF_HITS ALT_HITS`` tables, and VCF
  with per-sample ``AD``.
* Digital PCR droplet counts, qPCR Ct tables and XY-FISH nucleus counts.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.errors import UserError

PEAK_COLUMNS = ["sample_name", "sample_file", "marker", "allele", "size", "height", "area"]
COUNT_COLUMNS = ["sample_name", "marker", "ref", "alt", "depth", "ref_count", "alt_count"]
DDPCR_COLUMNS = ["sample_name", "well", "assay", "positive", "total"]
QPCR_COLUMNS = ["sample_name", "target", "ct"]
FISH_COLUMNS = ["sample_name", "donor_nuclei", "nuclei"]

_NO_CALL = {"", "undetermined", "undet", "no ct", "n/a", "na", "nan", "-", "--"}


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read the file ({exc.strerror})") from None


def _delimited(path: Path, skip_prefix: str | None = None) -> pd.DataFrame:
    """A delimited text table as strings, with the delimiter sniffed from its header."""
    text = _read_text(path)
    lines = [ln for ln in text.splitlines()
             if ln.strip() and not (skip_prefix and ln.startswith(skip_prefix))]
    if not lines:
        raise UserError.single(str(path), "the file is empty; expected a table with a header row")
    header = lines[0]
    delim = max(("\t", ",", ";"), key=header.count)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    width = len(rows[0])
    # Excel re-saves pad rows with trailing delimiters; keep the header's width
    body = [(r + [""] * width)[:width] for r in rows[1:]]
    cols = [c.strip() for c in rows[0]]
    return pd.DataFrame(body, columns=cols, dtype=str).fillna("")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _pick(df: pd.DataFrame, path: Path, wanted: dict[str, tuple[str, ...]],
          optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rename the first matching column of each synonym list; complain about missing ones."""
    by_norm = {_norm(c): c for c in df.columns}
    out: dict[str, pd.Series] = {}
    missing = []
    for key, synonyms in wanted.items():
        col = next((by_norm[_norm(s)] for s in synonyms if _norm(s) in by_norm), None)
        if col is None:
            if key not in optional:
                missing.append(f"{key} (any of: {', '.join(synonyms)})")
            continue
        out[key] = df[col].astype(str).str.strip()
    if missing:
        raise UserError.single(
            str(path), f"missing column(s) {'; '.join(missing)}; the file has: {', '.join(df.columns)}",
            hint="Export the table again with these columns, or check that this is the right file.")
    return pd.DataFrame(out)


def _numbers(values: pd.Series, path: Path, column: str, allow_missing: bool = False) -> np.ndarray:
    text = values.astype(str).str.strip().str.replace(",", "", regex=False)
    missing = text.str.lower().isin(_NO_CALL)
    nums = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = nums.isna() & ~missing
    if bad.any() or (missing.any() and not allow_missing):
        i = int(np.flatnonzero(bad | missing)[0])
        raise UserError.single(f"{path}: data row {i + 1}, column {column}",
                               f"got {values.iloc[i]!r}; expected a number")
    return nums.to_numpy(dtype=float)


def allele_label(value: str) -> str:
    """Canonical allele designation: ``12``, ``9.3``, ``X``; ``12.0`` becomes ``12``."""
    value = str(value).strip()
    try:
        num = float(value)
    except ValueError:
        return value.upper() if value.upper() in ("X", "Y", "OL") else value
    return str(int(num)) if num == int(num) else f"{num:.1f}"


_STEM = re.compile(r"\.(fsa|hid|ab1)$", re.IGNORECASE)


def read_genemapper(path: str | Path) -> pd.DataFrame:
    """Read a GeneMapper peak export (Sample/Peak table or genotype table).

    Parameters
    ----------
    path
        A tab- or comma-delimited export. The Sample/Peak variant has one row per peak
        with ``Sample File Name`` (and/or ``Sample Name``), ``Marker``, ``Allele``,
        ``Size``, ``Height`` and ``Area``; the genotype-table variant has ``Allele 1..n``
        with matching ``Size n``/``Height n``/``Area n`` columns. Empty allele cells are
        skipped; off-ladder peaks keep the label ``OL``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PEAK_COLUMNS`; ``sample_name`` is the ``Sample Name`` (or the sample
        file name without ``.fsa``/``.hid``), ``sample_file`` the file name as exported.
        ``area`` is NaN when the export has no area column.
    """
    path = Path(path)
    df = _delimited(path)
    norm = {_norm(c): c for c in df.columns}
    if "allele" in norm:
        peaks = _pick(df, path, {"sample_file": ("Sample File Name", "Sample File", "Sample Name"),
                                 "sample_name": ("Sample Name",), "marker": ("Marker", "Locus"),
                                 "allele": ("Allele",), "size": ("Size",), "height": ("Height",),
                                 "area": ("Area",)}, optional=("sample_name", "size", "area"))
    elif "allele1" in norm:
        n = 1
        parts = []
        ids = _pick(df, path, {"sample_file": ("Sample File Name", "Sample File", "Sample Name"),
                               "sample_name": ("Sample Name",), "marker": ("Marker", "Locus")},
                    optional=("sample_name",))
        while f"allele{n}" in norm:
            cols = {"allele": (f"Allele {n}",), "size": (f"Size {n}",), "height": (f"Height {n}",),
                    "area": (f"Area {n}",)}
            part = _pick(df, path, cols, optional=("size", "area"))
            parts.append(pd.concat([ids, part], axis=1))
            n += 1
        peaks = pd.concat(parts, ignore_index=True)
    else:
        raise UserError.single(
            str(path), f"no 'Allele' or 'Allele 1' column; the file has: {', '.join(df.columns)}",
            hint="Export the Sample/Peak table or the genotype table from GeneMapper.")
    if "sample_name" not in peaks:
        peaks["sample_name"] = peaks["sample_file"].str.replace(_STEM, "", regex=True)
    peaks["sample_name"] = peaks["sample_name"].where(peaks["sample_name"] != "",
                                                      peaks["sample_file"].str.replace(_STEM, "", regex=True))
    peaks = peaks[peaks["allele"].str.strip() != ""].reset_index(drop=True)
    peaks["allele"] = peaks["allele"].map(allele_label)
    for col in ("size", "height", "area"):
        if col in peaks:
            peaks[col] = _numbers(peaks[col], path, col.capitalize(), allow_missing=col != "height")
        else:
            peaks[col] = np.nan
    return peaks[PEAK_COLUMNS].sort_values(["sample_name", "marker", "size", "allele"],
                                           kind="stable").reset_index(drop=True)


def read_marker_counts(path: str | Path, sample_name: str | None = None) -> pd.DataFrame:
    """Read a Devyser-style NGS marker count table (``#SNPID TOT_HITS REF_HITS ALT_HITS``).

    Parameters
    ----------
    path
        One sample's table; extra columns (``REF``, ``ALT``, other hits) are allowed.
    sample_name
        Name recorded for the sample (default: the file name without extension).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COUNT_COLUMNS`. ``depth`` is ``REF_HITS + ALT_HITS`` (reads of a
        third base are not evidence for either person).
    """
    path = Path(path)
    if path.suffix.lower() in (".vcf", ".gz"):
        return read_vcf(path, sample_name)
    df = _delimited(path, skip_prefix="##")
    df.columns = [c.lstrip("#").strip() for c in df.columns]
    t = _pick(df, path, {"marker": ("SNPID", "SNP ID", "Marker", "ID"), "total": ("TOT_HITS",),
                         "ref_count": ("REF_HITS",), "alt_count": ("ALT_HITS",),
                         "ref": ("REF",), "alt": ("ALT",)}, optional=("total", "ref", "alt"))
    out = pd.DataFrame({"sample_name": sample_name or path.stem, "marker": t["marker"],
                        "ref": t.get("ref", ""), "alt": t.get("alt", "")})
    out["ref_count"] = _numbers(t["ref_count"], path, "REF_HITS")
    out["alt_count"] = _numbers(t["alt_count"], path, "ALT_HITS")
    out["depth"] = out["ref_count"] + out["alt_count"]
    return out[COUNT_COLUMNS].reset_index(drop=True)


def read_vcf(path: str | Path, sample_name: str | None = None) -> pd.DataFrame:
    """Read per-sample allele depths (``FORMAT/AD``) from a VCF.

    Parameters
    ----------
    path
        A plain-text VCF. Multi-allelic records use the first ALT allele.
    sample_name
        Keep only this sample column (default: every sample).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COUNT_COLUMNS`; ``marker`` is the ID, or ``CHROM:POS`` when the ID
        is ``.``.
    """
    path = Path(path)
    header: list[str] | None = None
    records = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.startswith("##") or not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if line.startswith("#"):
            header = [f.lstrip("#") for f in fields]
            continue
        if header is None:
            raise UserError.single(f"{path}: line {n}", "data before the #CHROM header line; expected a VCF")
        records.append((n, fields))
    if header is None or len(header) < 10 or "FORMAT" not in header:
        raise UserError.single(str(path), "no #CHROM header with FORMAT and sample columns; expected a VCF")
    samples = header[9:]
    if sample_name is not None and sample_name not in samples:
        raise UserError.single(str(path), f"no sample column {sample_name!r}; the VCF has: {', '.join(samples)}")
    rows = []
    for n, fields in records:
        chrom, pos, vid, ref, alt = fields[:5]
        keys = fields[8].split(":")
        if "AD" not in keys:
            raise UserError.single(f"{path}: line {n}, column FORMAT", f"no AD field in {fields[8]!r}; expected allele depths")
        iad = keys.index("AD")
        marker = vid if vid not in ("", ".") else f"{chrom}:{pos}"
        for s, value in zip(samples, fields[9:], strict=False):
            if sample_name is not None and s != sample_name:
                continue
            parts = value.split(":")
            ad = parts[iad].split(",") if iad < len(parts) else ["."]
            if len(ad) < 2 or "." in ad[:2]:
                depths = (0.0, 0.0)
            else:
                try:
                    depths = (float(ad[0]), float(ad[1]))
                except ValueError:
                    raise UserError.single(f"{path}: line {n}, sample {s}, field AD",
                                           f"got {parts[iad]!r}; expected integers") from None
            rows.append((s, marker, ref, alt.split(",")[0], depths[0] + depths[1], depths[0], depths[1]))
    return pd.DataFrame(rows, columns=["sample_name", "marker", "ref", "alt", "depth", "ref_count",
                                       "alt_count"])[COUNT_COLUMNS]


def read_ddpcr(path: str | Path) -> pd.DataFrame:
    """Read digital PCR droplet counts: one row per well and assay.

    Columns (case-insensitive): ``Sample``, ``Well``, ``Assay``/``Target``,
    ``Positives``/``Positive``, ``Accepted Droplets``/``Total``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DDPCR_COLUMNS`.
    """
    path = Path(path)
    t = _pick(_delimited(path), path, {
        "sample_name": ("Sample", "Sample Name", "Sample description 1"), "well": ("Well",),
        "assay": ("Assay", "Target"), "positive": ("Positives", "Positive", "Positive droplets"),
        "total": ("Accepted Droplets", "Total", "Total droplets", "Droplets")},
        optional=("sample_name",))
    if "sample_name" not in t:
        t["sample_name"] = path.stem
    t["positive"] = _numbers(t["positive"], path, "Positives")
    t["total"] = _numbers(t["total"], path, "Accepted Droplets")
    return t[DDPCR_COLUMNS].reset_index(drop=True)


def read_qpcr_ct(path: str | Path) -> pd.DataFrame:
    """Read a qPCR Ct table (``Sample``, ``Target``, ``Ct``/``Cq``; one row per replicate).

    ``Undetermined`` (no amplification) is kept as NaN: for a donor-specific marker it means
    nothing was seen, which the estimator turns into an upper bound, not into 0 %.
    """
    path = Path(path)
    t = _pick(_delimited(path), path, {"sample_name": ("Sample Name", "Sample"),
                                       "target": ("Target Name", "Target", "Assay"),
                                       "ct": ("Ct", "CT", "Cq", "Cт")})
    t["ct"] = _numbers(t["ct"], path, "Ct", allow_missing=True)
    return t[QPCR_COLUMNS].reset_index(drop=True)


def read_fish(path: str | Path) -> pd.DataFrame:
    """Read XY-FISH nucleus counts (``Sample``, ``Donor nuclei``, ``Nuclei scored``)."""
    path = Path(path)
    t = _pick(_delimited(path), path, {"sample_name": ("Sample", "Sample Name"),
                                       "donor_nuclei": ("Donor nuclei", "Donor"),
                                       "nuclei": ("Nuclei scored", "Nuclei", "Total nuclei")})
    t["donor_nuclei"] = _numbers(t["donor_nuclei"], path, "Donor nuclei")
    t["nuclei"] = _numbers(t["nuclei"], path, "Nuclei scored")
    return t[FISH_COLUMNS].reset_index(drop=True)
