"""The reader registry: an export's method told from its content, one sample read from it.

Each method's reader lives with its method (GeneMapper in :mod:`immuno.chimerism.str`,
counts and VCF in :mod:`immuno.chimerism.ngs`, vendor exports in
:mod:`immuno.chimerism.dpcr`, Ct tables in :mod:`immuno.chimerism.qpcr`, nucleus counts in
:mod:`immuno.chimerism.fish`); this module maps the method names to them, recognises a
VCF, a count table or a digital PCR export by content, and picks one sample's rows out of
a multi-sample file by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from immuno.chimerism.common.tables import norm, read_text
from immuno.chimerism.dpcr.exports import read_ddpcr
from immuno.chimerism.fish.nuclei import read_fish
from immuno.chimerism.ngs.exports import is_vcf, read_marker_counts
from immuno.chimerism.ngs.genotype_free import is_allele_matrix
from immuno.chimerism.qpcr.ct import read_qpcr_ct
from immuno.chimerism.str.genemapper import read_genemapper
from immuno.errors import UserError

READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "str": read_genemapper,
    "ngs": read_marker_counts,
    "ddpcr": read_ddpcr,
    "qpcr": read_qpcr_ct,
    "fish": read_fish,
}


def guess_method(path: Path) -> str:
    """The method of an export from its content: ``ngs`` for a VCF (plain or gzip) or a
    Devyser count table, ``ddpcr`` for a digital PCR export, else ``str`` (GeneMapper).

    qPCR and FISH tables look like any table: name them with ``method``.
    """
    if is_vcf(path):
        return "ngs"
    try:
        head = read_text(path)[:3000]
    except UserError:
        return "str"  # the reader reports the unreadable file
    header = norm(head.splitlines()[0]) if head.strip() else ""
    low = head.lower()
    if "ref_hits" in low or is_allele_matrix(head):
        return "ngs"
    if any(
        k in header
        for k in ("accepteddroplets", "partitionsvalid", "copiespermicroliter", "amplitude")
    ) or low.lstrip().startswith("target value of"):
        return "ddpcr"
    return "str"


def read_one(path: Path, method: str, name: str | None, option: str = "--*-name") -> pd.DataFrame:
    """One sample's rows of an export; a multi-sample file needs the sample's name.

    The name is matched exactly, then ignoring case (``bc`` in a reference list for
    ``BC`` in the export).

    Raises
    ------
    UserError
        When the file holds several samples and no name is given, or not the one named.
    """
    table = READERS[method](path)
    names = sorted(table["sample_name"].astype(str).unique())
    if name is None:
        if len(names) == 1:
            return table
        raise UserError.single(
            str(path),
            f"holds {len(names)} samples ({', '.join(names[:8])}); say which with {option}",
        )
    files = table.get("sample_file", table["sample_name"]).astype(str)
    part = table[(table["sample_name"] == name) | (files == name)]
    if part.empty:
        lower = name.lower()
        part = table[(table["sample_name"].str.lower() == lower) | (files.str.lower() == lower)]
        if part["sample_name"].nunique() > 1:
            part = part.iloc[0:0]
    if part.empty:
        empty = [
            n for n in table.attrs.get("samples_without_peaks", []) if n.lower() == name.lower()
        ]
        if empty:
            raise UserError.single(
                str(path),
                f"sample {empty[0]!r} is in the export without a single peak above the "
                "analysis threshold (a failed run?); nothing to estimate from",
            )
        raise UserError.single(
            str(path), f"no sample named {name!r}; the file holds: {', '.join(names[:8])}"
        )
    return part.reset_index(drop=True)
