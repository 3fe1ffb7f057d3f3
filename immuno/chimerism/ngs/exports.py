"""NGS marker counts as exported: Devyser-style count tables and VCF, one tidy table.

Devyser-style ``#SNPID TOT_HITS REF_HITS ALT_HITS`` tables (tab-, comma- or
semicolon-delimited, decimal commas, gzip), VCF (plain or ``.vcf.gz``, recognised by
content) with per-sample ``AD``, and wide allele-count tables
(:mod:`immuno.chimerism.ngs.genotype_free`) recognised by content. The readers name the
file and the missing column when an export does not look as expected.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from immuno.chimerism.common.tables import delimited, is_gzip, numbers, pick, read_text
from immuno.chimerism.ngs.genotype_free import is_allele_matrix, read_allele_matrix
from immuno.errors import UserError

COUNT_COLUMNS = ["sample_name", "marker", "ref", "alt", "depth", "ref_count", "alt_count"]


def is_vcf(path: Path) -> bool:
    """Whether a file is a VCF (plain or gzip-compressed), judged by its first line."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                head = fh.read(64)
        else:
            with open(path, encoding="utf-8-sig", errors="replace") as fh:
                head = fh.read(64)
    except (OSError, EOFError):
        return False
    return head.lstrip().lower().startswith("##fileformat=vcf")


def read_marker_counts(path: str | Path, sample_name: str | None = None) -> pd.DataFrame:
    """Read a Devyser-style NGS marker count table (``#SNPID TOT_HITS REF_HITS ALT_HITS``).

    Parameters
    ----------
    path
        One sample's table; extra columns (``REF``, ``ALT``, other hits) are allowed. A
        VCF (plain or gzip) or a wide allele-count table (one row per allele, one column
        per sample: :mod:`immuno.chimerism.ngs.genotype_free`) is recognised by content.
    sample_name
        Name recorded for the sample (default: the file name without extension).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COUNT_COLUMNS`. ``depth`` is ``REF_HITS + ALT_HITS`` (reads of a
        third base are not evidence for either person).
    """
    path = Path(path)
    if is_vcf(path):
        return read_vcf(path, sample_name)
    text = read_text(path)
    if is_allele_matrix(text):
        # one row per allele, one column per sample (DonorGenotypeFree / MOAT layout)
        names = (
            [sample_name]
            if sample_name
            else [c.strip() for c in text.splitlines()[0].split(",")[1:]]
        )
        return pd.concat([read_allele_matrix(path, n) for n in names if n], ignore_index=True)
    df = delimited(path, skip_prefix="##", text=text)
    df.columns = [c.lstrip("#").strip() for c in df.columns]
    t = pick(
        df,
        path,
        {
            "marker": ("SNPID", "SNP ID", "Marker", "ID"),
            "total": ("TOT_HITS",),
            "ref_count": ("REF_HITS",),
            "alt_count": ("ALT_HITS",),
            "ref": ("REF",),
            "alt": ("ALT",),
        },
        optional=("total", "ref", "alt"),
    )
    out = pd.DataFrame(
        {
            "sample_name": sample_name or path.stem,
            "marker": t["marker"],
            "ref": t.get("ref", ""),
            "alt": t.get("alt", ""),
        }
    )
    out["ref_count"] = numbers(t["ref_count"], path, "REF_HITS", count=True)
    out["alt_count"] = numbers(t["alt_count"], path, "ALT_HITS", count=True)
    out["depth"] = out["ref_count"] + out["alt_count"]
    return out[COUNT_COLUMNS].reset_index(drop=True)


def read_vcf(path: str | Path, sample_name: str | None = None) -> pd.DataFrame:
    """Read per-sample allele depths (``FORMAT/AD``) from a VCF.

    Parameters
    ----------
    path
        A VCF, plain or gzip-compressed (recognised by content, whatever its name).
        Multi-allelic records use the first ALT allele.
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
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if line.startswith("##") or not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if line.startswith("#"):
            header = [f.lstrip("#") for f in fields]
            continue
        if header is None:
            raise UserError.single(
                f"{path}: line {n}", "data before the #CHROM header line; expected a VCF"
            )
        records.append((n, fields))
    if header is None or len(header) < 10 or "FORMAT" not in header:
        raise UserError.single(
            str(path), "no #CHROM header with FORMAT and sample columns; expected a VCF"
        )
    samples = header[9:]
    if sample_name is not None and sample_name not in samples:
        raise UserError.single(
            str(path), f"no sample column {sample_name!r}; the VCF has: {', '.join(samples)}"
        )
    rows = []
    for n, fields in records:
        chrom, pos, vid, ref, alt = fields[:5]
        keys = fields[8].split(":")
        if "AD" not in keys:
            raise UserError.single(
                f"{path}: line {n}, column FORMAT",
                f"no AD field in {fields[8]!r}; expected allele depths",
            )
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
                    depths = (-1.0, -1.0)
                if min(depths) < 0 or any(d != int(d) for d in depths):
                    raise UserError.single(
                        f"{path}: line {n}, sample {s}, field AD",
                        f"got {parts[iad]!r}; expected read counts (whole numbers >= 0)",
                    )
            rows.append(
                (s, marker, ref, alt.split(",")[0], depths[0] + depths[1], depths[0], depths[1])
            )
    return pd.DataFrame(
        rows, columns=["sample_name", "marker", "ref", "alt", "depth", "ref_count", "alt_count"]
    )[COUNT_COLUMNS]
