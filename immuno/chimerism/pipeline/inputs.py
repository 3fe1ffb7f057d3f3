"""From sample-sheet rows to estimator inputs: which files, which references, which method.

A biopsy's references are the rows with the same ``patient_id`` and ``panel`` and role
``recipient_reference``, and the ``donor_reference`` row with the same ``donor_id``
(the same patient's row first: patients may share a donor lot). A patient with several
donors (a double graft) has one ``donor_reference`` row per ``donor_id``; the biopsy is
then estimated against all of them, one fraction per donor. The method comes from
the panel (``method: str | ngs | ddpcr | qpcr | fish``). Multi-sample exports are read
once and split by ``sample_name`` (default: the sample id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.chimerism.ngs.exports import is_vcf, read_marker_counts
from immuno.chimerism.ngs.genotype_free import is_allele_matrix
from immuno.chimerism.pipeline.readers import READERS
from immuno.errors import UserError

METHODS = ("str", "ngs", "ddpcr", "qpcr", "fish")
#: methods whose biopsies cannot be estimated without both references
NEEDS_REFERENCES = {
    "str": ("recipient_reference", "donor_reference"),
    "ngs": ("recipient_reference", "donor_reference"),
    "qpcr": ("donor_reference",),
}


def sample_name(row: Mapping[str, Any]) -> str:
    """The sample's name inside its file (``sample_name``, else the sample id)."""
    return str(row.get("sample_name", "") or row["sample_id"])


def recipient_replicates(rows: pd.DataFrame, biopsy: Mapping[str, Any]) -> list[pd.Series]:
    """Every recipient-reference row of the biopsy's patient and panel (pure-recipient
    replicates when there are several)."""
    same = rows[
        (rows["patient_id"] == biopsy["patient_id"])
        & (rows["panel"] == biopsy["panel"])
        & (rows["role"] == "recipient_reference")
    ]
    return [r for _, r in same.iterrows()]


def references(rows: pd.DataFrame, biopsy: Mapping[str, Any]) -> dict[str, pd.Series | None]:
    """The recipient and donor reference rows of a biopsy row (None when missing)."""
    same = rows[(rows["patient_id"] == biopsy["patient_id"]) & (rows["panel"] == biopsy["panel"])]
    rec = same[same["role"] == "recipient_reference"]
    donors = rows[
        (rows["role"] == "donor_reference")
        & (rows["panel"] == biopsy["panel"])
        & (rows["donor_id"] == biopsy["donor_id"])
    ]
    own = donors[donors["patient_id"] == biopsy["patient_id"]]
    donors = own if len(own) else donors
    return {
        "recipient_reference": rec.iloc[0] if len(rec) else None,
        "donor_reference": donors.iloc[0] if len(donors) else None,
    }


def donor_references(rows: pd.DataFrame, biopsy: Mapping[str, Any]) -> dict[str, pd.Series]:
    """Every donor reference of a biopsy, by donor id: the one its ``donor_id`` names, then
    any other ``donor_reference`` rows of the same patient and panel (a double graft has
    one row per donor). Empty when the biopsy's own donor has no reference row."""
    first = references(rows, biopsy)["donor_reference"]
    if first is None:
        return {}
    out = {str(biopsy["donor_id"]): first}
    more = rows[
        (rows["role"] == "donor_reference")
        & (rows["panel"] == biopsy["panel"])
        & (rows["patient_id"] == biopsy["patient_id"])
        & (rows["donor_id"] != biopsy["donor_id"])
    ]
    for _, r in more.iterrows():
        out.setdefault(str(r["donor_id"]), r)
    return out


def _is_matrix(path: Path) -> bool:
    """A wide allele-count table (one column per sample), judged by its first lines."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            head = "".join(fh.readline() for _ in range(80))
    except OSError:
        return False
    return is_allele_matrix(head)


@dataclass
class FileCache:
    """Reads each data file once; returns one sample's part of it."""

    root: Path
    #: per data file (resolved path), the names the sheet's rows use for their samples in it
    names_in_sheet: dict[str, set[str]] = field(default_factory=dict)
    tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def for_rows(cls, root: str | Path, rows: pd.DataFrame) -> FileCache:
        """A cache that knows which sheet rows share each file.

        A single-sample file need not repeat its sample's name, but only when no other row
        of the sheet names that one sample: otherwise a biopsy missing from a shared export
        would be read as the recipient's own peaks.
        """
        root = Path(root)
        names: dict[str, set[str]] = {}
        for _, row in rows.iterrows():
            names.setdefault(str((root / str(row["file"])).resolve()), set()).add(sample_name(row))
        return cls(root, names)

    def sample(self, row: Mapping[str, Any], method: str) -> pd.DataFrame:
        """The rows of ``row``'s sample in its file, read with the method's reader.

        Raises
        ------
        UserError
            When the file cannot be read, lacks columns, or does not hold the sample.
        """
        path = (self.root / str(row["file"])).resolve()
        name = sample_name(row)
        if method == "ngs" and not is_vcf(path) and not _is_matrix(path):
            return read_marker_counts(path, sample_name=name)  # one sample per count table
        key = (str(path), method)
        if key not in self.tables:
            self.tables[key] = READERS.get(method, read_marker_counts)(path)
        table = self.tables[key]
        part = table[table["sample_name"] == name]
        if part.empty and table["sample_name"].nunique() == 1 and not row.get("sample_name"):
            only = str(table["sample_name"].iloc[0])
            if only not in self.names_in_sheet.get(str(path), set()) - {name}:
                part = table  # a single-sample file need not repeat the sample's name
        if part.empty and name in table.attrs.get("samples_without_peaks", []):
            raise UserError.single(
                f"{path}",
                f"sample {name!r} (sheet column sample_name) is in the export without "
                "a single peak above the analysis threshold (a failed run?)",
            )
        if part.empty:
            # the file's other sample names are not echoed: results must not carry free text
            others = table["sample_name"].nunique()
            raise UserError.single(
                f"{path}",
                f"no sample named {name!r} (sheet column sample_name) among "
                f"the {others} sample(s) in the file",
            )
        return part.reset_index(drop=True)
