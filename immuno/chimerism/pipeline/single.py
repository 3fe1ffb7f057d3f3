"""One biopsy estimated from its exports alone, without a batch (``immuno chimerism estimate``).

Every method: STR (GeneMapper) and NGS (count table or VCF) need the recipient and at
least one donor reference (several for a double graft); digital PCR may take the
recipient's wells as the limit of blank; qPCR needs the MSC product as its 100 %
calibrator; FISH needs no reference. The method is recognised from the biopsy file's
content when not given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from immuno.chimerism.common.confounders import apply_input_limit, genome_equivalents
from immuno.chimerism.common.result import ChimerismResult
from immuno.chimerism.dpcr.droplets import ddpcr_wells
from immuno.chimerism.fish.nuclei import estimate_fish
from immuno.chimerism.ngs.counts import estimate_counts
from immuno.chimerism.ngs.genotype_free import estimate_genotype_free
from immuno.chimerism.ngs.mixture import estimate_counts_donors
from immuno.chimerism.pipeline.readers import guess_method, read_one
from immuno.chimerism.qpcr.ct import estimate_qpcr
from immuno.chimerism.str.fragments import estimate_str
from immuno.chimerism.str.peaks import StrSettings
from immuno.errors import Problem, UserError

#: references each method needs (digital PCR's recipient wells are optional)
REQUIRED = {
    "str": ("recipient", "donor"),
    "ngs": ("recipient", "donor"),
    "ddpcr": (),
    "qpcr": ("donor",),
    "fish": (),
}


@dataclass
class Exports:
    """The files of one estimate and the sample names inside multi-sample files.

    ``donor`` is the MSC donor's export; ``donors`` adds further donors (double graft),
    with ``donor_ids`` naming each donor (``D1``, ``D2`` ... by default) and
    ``donor_names`` their sample names inside the files.
    """

    sample: Path
    recipient: Path | None = None
    donor: Path | None = None
    names: Mapping[str, str | None] | None = None
    donors: Sequence[Path] = field(default_factory=list)
    donor_ids: Sequence[str] = field(default_factory=list)
    donor_names: Sequence[str | None] = field(default_factory=list)

    def all_donors(self) -> list[tuple[str, Path, str | None]]:
        """(donor id, file, sample name) of every donor given."""
        files = ([self.donor] if self.donor is not None else []) + list(self.donors)
        names = dict(self.names or {})
        sample_names = list(self.donor_names) or [names.get("donor")] * len(files)
        ids = list(self.donor_ids) or (
            [""] if len(files) == 1 else [f"D{i + 1}" for i in range(len(files))]
        )
        if len(ids) != len(files):
            raise UserError.single(
                "--donor-id",
                f"{len(ids)} donor id(s) for {len(files)} donor export(s); "
                "give one --donor-id per --donor",
            )
        if len(sample_names) != len(files):
            sample_names = (sample_names + [None] * len(files))[: len(files)]
        return list(zip(ids, files, sample_names, strict=True))


def str_settings(
    panel: Mapping[str, object] | None = None, analytical_threshold: float | None = None
) -> StrSettings:
    """STR settings from a panel's sections, with an analytical threshold given on its own."""
    s = (
        StrSettings()
        if panel is None
        else StrSettings.from_panel(
            dict(panel.get("thresholds", {}) or {}),
            dict(panel.get("artefacts", {}) or {}),  # type: ignore[arg-type]
            list(panel.get("loci", []) or []),
        )
    )  # type: ignore[arg-type]
    return (
        dataclasses.replace(s, analytical_threshold=analytical_threshold)
        if analytical_threshold
        else s
    )


def estimate_exports(
    files: Exports,
    method: str | None = None,
    options: Mapping[str, object] | None = None,
    panel: Mapping[str, object] | None = None,
) -> ChimerismResult:
    """Estimate one biopsy from its export files.

    Parameters
    ----------
    files
        The biopsy's export and the references the method needs.
    method
        ``str``, ``ngs``, ``ddpcr``, ``qpcr`` or ``fish``; by default recognised from the
        biopsy file's content (STR, NGS or digital PCR).
    options
        Method settings: ``target_assay``, ``reference_assay``, ``target_copies``,
        ``reference_copies`` (ddpcr); ``marker_target``, ``reference_target``,
        ``efficiency``, ``lod`` (qpcr); ``background`` (fish); ``dna_input_ng`` (str, ngs:
        the LoD is then at least 3 / genome equivalents); ``analytical_threshold`` (str);
        ``without_references`` (ngs: no recipient or donor export, the recipient read from
        the sample and the donor's alleles unknown, flagged ``no_references``);
        ``ngs_model`` (ngs, one donor: ``beta_binomial`` or ``net``, see
        :func:`immuno.chimerism.ngs.counts.estimate_counts`).
    panel
        A chimerism panel whose thresholds and artefact filters apply (STR).

    Raises
    ------
    UserError
        A missing reference or setting, or an export that cannot be read.
    """
    method = method or guess_method(files.sample)
    opts = dict(options or {})
    names = dict(files.names or {})
    donors = files.all_donors()
    if opts.get("without_references"):
        if method != "ngs" or files.recipient is not None or donors:
            raise UserError.single(
                "--without-references",
                "only for NGS counts, and with neither --recipient nor --donor",
            )
        sample = read_one(files.sample, method, names.get("sample"), "--sample-name")
        return estimate_genotype_free(sample)
    missing = [
        Problem(f"--{role}", f"the {method} method needs the {role} reference export")
        for role in REQUIRED[method]
        if (role == "recipient" and files.recipient is None) or (role == "donor" and not donors)
    ]
    if missing:
        raise UserError(
            missing,
            "give the reference exports of this patient and MSC lot"
            + (
                " (NGS counts without any reference: --without-references)"
                if method == "ngs"
                else ""
            ),
        )

    def table(role: str) -> pd.DataFrame:
        return read_one(Path(getattr(files, role)), method, names.get(role), f"--{role}-name")

    def donor_tables() -> dict[str, pd.DataFrame]:
        out = {}
        for i, (donor_id, path, name) in enumerate(donors):
            if donor_id in out:
                raise UserError.single(
                    "--donor-id", f"{donor_id!r} is given twice; each donor needs its own id"
                )
            out[donor_id] = read_one(
                Path(path), method, name, "--donor-name" + (f" (donor {i + 1})" if i else "")
            )
        return out

    if method in ("str", "ngs"):
        dna_ng = opts.get("dna_input_ng")
        genomes = genome_equivalents(float(dna_ng)) if dna_ng else None  # type: ignore[arg-type]
        sample, recipient = table("sample"), table("recipient")
        dons = donor_tables()
        if method == "str":
            settings = str_settings(panel, opts.get("analytical_threshold"))  # type: ignore[arg-type]
            result = (
                estimate_str(sample, recipient, donors=dons, settings=settings)
                if len(dons) > 1
                else estimate_str(sample, recipient, next(iter(dons.values())), settings=settings)
            )
            return apply_input_limit(result, genomes, f"{dna_ng} ng given")
        if len(dons) > 1:
            return estimate_counts_donors(sample, recipient, dons, genome_equivalents=genomes)
        return estimate_counts(
            sample,
            recipient,
            next(iter(dons.values())),
            genome_equivalents=genomes,
            model=str(opts.get("ngs_model") or "beta_binomial"),
        )
    if method == "ddpcr":
        return _ddpcr(
            table("sample"), table("recipient") if files.recipient else None, opts, files.sample
        )
    if method == "qpcr":
        return _qpcr(
            table("sample"),
            read_one(Path(donors[0][1]), method, donors[0][2], "--donor-name"),
            opts,
            files.sample,
        )
    counts = table("sample")
    return estimate_fish(
        int(counts["donor_nuclei"].sum()),
        int(counts["nuclei"].sum()),
        background=float(opts.get("background") or 0.0),
    )  # type: ignore[arg-type]


def _need(opts: Mapping[str, object], key: str, found: list[str], path: Path) -> str:
    value = opts.get(key)
    if not value:
        raise UserError.single(
            f"--{key.replace('_', '-')}", f"required for {path.name}; it holds {', '.join(found)}"
        )
    if value not in found:
        raise UserError.single(
            str(path), f"no {key.replace('_', ' ')} {value!r}; it holds {', '.join(found)}"
        )
    return str(value)


def _ddpcr(
    sample: pd.DataFrame, blank: pd.DataFrame | None, opts: Mapping[str, object], path: Path
) -> ChimerismResult:
    found = sorted(sample["assay"].astype(str).unique())
    target, reference = (_need(opts, k, found, path) for k in ("target_assay", "reference_assay"))
    return ddpcr_wells(
        sample,
        blank,
        target,
        reference,
        float(opts.get("target_copies") or 1.0),  # type: ignore[arg-type]
        float(opts.get("reference_copies") or 2.0),
    )  # type: ignore[arg-type]


def _qpcr(
    sample: pd.DataFrame, calibrator: pd.DataFrame, opts: Mapping[str, object], path: Path
) -> ChimerismResult:
    found = sorted(sample["target"].astype(str).unique())
    marker, ref_gene = (_need(opts, k, found, path) for k in ("marker_target", "reference_target"))

    def cts(t: pd.DataFrame, target: str) -> list[float]:
        return t.loc[t["target"] == target, "ct"].tolist()

    return estimate_qpcr(
        cts(sample, marker),
        cts(sample, ref_gene),
        cts(calibrator, marker),
        cts(calibrator, ref_gene),
        efficiency=float(opts.get("efficiency") or 1.0),  # type: ignore[arg-type]
        lod=float(opts.get("lod") or 0.001),
    )  # type: ignore[arg-type]
