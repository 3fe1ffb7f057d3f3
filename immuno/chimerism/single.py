"""One biopsy estimated from its exports alone, without a batch (``immuno chimerism estimate``).

Every method: STR (GeneMapper) and NGS (count table or VCF) need both references; digital
PCR may take the recipient's wells as the limit of blank; qPCR needs the MSC product as
its 100 % calibrator; FISH needs no reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from immuno.chimerism.confounders import apply_input_limit, genome_equivalents
from immuno.chimerism.counts import estimate_counts
from immuno.chimerism.fragments import estimate_str
from immuno.chimerism.pcr import estimate_ddpcr, estimate_fish, estimate_qpcr
from immuno.chimerism.readers import (
    read_ddpcr,
    read_fish,
    read_genemapper,
    read_marker_counts,
    read_qpcr_ct,
)
from immuno.chimerism.result import ChimerismResult
from immuno.errors import Problem, UserError

READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "str": read_genemapper, "ngs": read_marker_counts, "ddpcr": read_ddpcr, "qpcr": read_qpcr_ct, "fish": read_fish}
#: references each method needs (digital PCR's recipient wells are optional)
REQUIRED = {"str": ("recipient", "donor"), "ngs": ("recipient", "donor"), "ddpcr": (), "qpcr": ("donor",),
            "fish": ()}


@dataclass
class Exports:
    """The files of one estimate and the sample names inside multi-sample files."""

    sample: Path
    recipient: Path | None = None
    donor: Path | None = None
    names: Mapping[str, str | None] | None = None


def guess_method(path: Path) -> str:
    """``ngs`` for VCF and Devyser count tables, ``str`` otherwise (GeneMapper exports).

    Digital PCR, qPCR and FISH tables look alike (plain tables); name them with ``method``.
    """
    if path.suffix.lower() == ".vcf":
        return "ngs"
    try:
        head = path.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:2000].lower()
    except OSError:
        return "str"  # the reader reports the unreadable file
    return "ngs" if "ref_hits" in head or head.startswith("##fileformat=vcf") else "str"


def read_one(path: Path, method: str, name: str | None, option: str = "--*-name") -> pd.DataFrame:
    """One sample's rows of an export; a multi-sample file needs the sample's name.

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
        raise UserError.single(str(path), f"holds {len(names)} samples ({', '.join(names[:8])}); "
                               f"say which with {option}")
    part = table[(table["sample_name"] == name) | (table.get("sample_file", table["sample_name"]) == name)]
    if part.empty:
        raise UserError.single(str(path), f"no sample named {name!r}; the file holds: {', '.join(names[:8])}")
    return part.reset_index(drop=True)


def estimate_exports(files: Exports, method: str | None = None, options: Mapping[str, object] | None = None
                     ) -> ChimerismResult:
    """Estimate one biopsy from its export files.

    Parameters
    ----------
    files
        The biopsy's export and the references the method needs.
    method
        ``str``, ``ngs``, ``ddpcr``, ``qpcr`` or ``fish``; by default guessed from the
        biopsy's file (NGS or STR only).
    options
        Method settings: ``target_assay``, ``reference_assay``, ``target_copies``,
        ``reference_copies`` (ddpcr); ``marker_target``, ``reference_target``,
        ``efficiency``, ``lod`` (qpcr); ``background`` (fish); ``dna_input_ng`` (str, ngs:
        the LoD is then at least 3 / genome equivalents).

    Raises
    ------
    UserError
        A missing reference or setting, or an export that cannot be read.
    """
    method = method or guess_method(files.sample)
    opts = dict(options or {})
    names = dict(files.names or {})
    missing = [Problem(f"--{role}", f"the {method} method needs the {role} reference export")
               for role in REQUIRED[method] if getattr(files, role) is None]
    if missing:
        raise UserError(missing, "give the reference exports of this patient and MSC lot")

    def table(role: str) -> pd.DataFrame:
        return read_one(Path(getattr(files, role)), method, names.get(role), f"--{role}-name")

    if method in ("str", "ngs"):
        dna_ng = opts.get("dna_input_ng")
        genomes = genome_equivalents(float(dna_ng)) if dna_ng else None
        if method == "str":
            result = estimate_str(table("sample"), table("recipient"), table("donor"))
            return apply_input_limit(result, genomes, f"{dna_ng} ng given")
        return estimate_counts(table("sample"), table("recipient"), table("donor"), genome_equivalents=genomes)
    if method == "ddpcr":
        return _ddpcr(table("sample"), table("recipient") if files.recipient else None, opts, files.sample)
    if method == "qpcr":
        return _qpcr(table("sample"), table("donor"), opts, files.sample)
    counts = table("sample")
    return estimate_fish(int(counts["donor_nuclei"].sum()), int(counts["nuclei"].sum()),
                         background=float(opts.get("background") or 0.0))


def _need(opts: Mapping[str, object], key: str, found: list[str], path: Path) -> str:
    value = opts.get(key)
    if not value:
        raise UserError.single(f"--{key.replace('_', '-')}", f"required for {path.name}; it holds {', '.join(found)}")
    if value not in found:
        raise UserError.single(str(path), f"no {key.replace('_', ' ')} {value!r}; it holds {', '.join(found)}")
    return str(value)


def _ddpcr(sample: pd.DataFrame, blank: pd.DataFrame | None, opts: Mapping[str, object],
           path: Path) -> ChimerismResult:
    wells = sample.groupby("assay")[["positive", "total"]].sum()
    found = sorted(wells.index.astype(str))
    target, reference = (_need(opts, k, found, path) for k in ("target_assay", "reference_assay"))
    extra: dict[str, float] = {}
    if blank is not None:
        bw = blank.groupby("assay")[["positive", "total"]].sum()
        if target in bw.index:
            extra = {"blank_positive": float(bw.loc[target, "positive"]), "blank_total": float(bw.loc[target, "total"])}
    return estimate_ddpcr(wells.loc[target, "positive"], wells.loc[target, "total"], wells.loc[reference, "positive"],
                          wells.loc[reference, "total"], target_copies=float(opts.get("target_copies") or 1.0),
                          reference_copies=float(opts.get("reference_copies") or 2.0), **extra)


def _qpcr(sample: pd.DataFrame, calibrator: pd.DataFrame, opts: Mapping[str, object], path: Path) -> ChimerismResult:
    found = sorted(sample["target"].astype(str).unique())
    marker, ref_gene = (_need(opts, k, found, path) for k in ("marker_target", "reference_target"))

    def cts(t: pd.DataFrame, target: str) -> list[float]:
        return t.loc[t["target"] == target, "ct"].tolist()

    return estimate_qpcr(cts(sample, marker), cts(sample, ref_gene), cts(calibrator, marker), cts(calibrator, ref_gene),
                         efficiency=float(opts.get("efficiency") or 1.0), lod=float(opts.get("lod") or 0.001))
