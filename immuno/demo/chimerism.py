"""Demo chimerism: GeneMapper STR exports and NGS marker counts with known donor fractions.

Per patient: an unrelated MSC donor (two patients share each donor lot), a recipient
reference and a donor reference taken at D0, and the M1 skin biopsy. Biopsy donor
fractions cycle through 5-30 %, 0.1-1 % and 0 % across patients, so the default four
patients cover every range. The fourth patient received a pooled product of two donor
lots (the second at 0.1-1 %): one fraction per donor, ``donor_fraction_<lot>`` in truth.

STR: 16 autosomal loci with unimodal allele frequencies, peak heights proportional to the
allele dose, back-stutter of 5-10 % of the parent peak (one repeat below), 5 % peak
noise; peaks under 50 RFU are not exported, as GeneMapper does. The files carry the
quirks of real exports (:mod:`immuno.demo.chimerism_files`): a Sample/Peak table, an ID-X
genotypes table and a decimal-comma re-save; off-ladder artefacts and an off-ladder
allele; pull-up; the MSC lot's profile as a genotype list with homozygotes entered twice.
NGS: 48 biallelic markers at ~1000x, beta-binomial reads (overdispersion rho = 800) with
per-marker background errors as uneven as real amplicon panels' (lognormal, sd 0.8),
written as one Devyser-style count table per sample, or a ``.vcf.gz`` for one patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.demo import chimerism_files as files
from immuno.io import write_text

K_STREAM = 3
STR_PANEL = "chimerism_str16"
NGS_PANEL = "chimerism_ngs48"
NGS_MARKERS = 48
NGS_DEPTH = 1000.0
NGS_RHO = 800.0
NGS_ERROR = 1e-3
#: spread (lognormal sd) of the per-marker background errors of the demo's panel
NGS_ERROR_SPREAD = 0.8

#: locus, dye, smallest and largest repeat, most frequent repeat, size of repeat 0 (bp)
LOCI: list[tuple[str, str, int, int, float, float]] = [
    ("D3S1358", "B", 12, 19, 15.5, 60.0), ("vWA", "B", 13, 21, 17.0, 90.0),
    ("D16S539", "B", 8, 14, 11.0, 220.0), ("CSF1PO", "B", 7, 14, 11.0, 280.0),
    ("TPOX", "G", 6, 13, 8.5, 200.0), ("D8S1179", "G", 8, 17, 13.0, 80.0),
    ("D21S11", "G", 27, 34, 30.0, 80.0), ("D18S51", "G", 10, 22, 15.0, 220.0),
    ("D2S441", "Y", 9, 16, 11.5, 60.0), ("D19S433", "Y", 11, 17, 14.0, 100.0),
    ("TH01", "Y", 5, 10, 7.5, 150.0), ("FGA", "Y", 18, 28, 22.0, 120.0),
    ("D22S1045", "R", 8, 18, 15.0, 60.0), ("D5S818", "R", 7, 15, 11.5, 110.0),
    ("D13S317", "R", 8, 15, 11.0, 160.0), ("D7S820", "R", 6, 14, 10.0, 230.0),
]
FRACTION_RANGES = {"high": (0.05, 0.30), "low": (0.001, 0.01), "zero": (0.0, 0.0)}
#: the patient (0-based position) who received a pooled product of two donor lots
POOLED_PATIENT = 3
#: the STR export layout of each patient, cycling: what labs' GeneMapper set-ups write
STR_LAYOUTS = ("peaks", "genotypes", "decimal_comma")
#: the patient (0-based) whose NGS files are single-sample VCF.gz, and whose recipient has
#: an off-ladder STR allele
VCF_PATIENT = 1
OFF_LADDER_PATIENT = 0


def allele_frequencies(locus: tuple[str, str, int, int, float, float]) -> dict[str, float]:
    """Allele frequencies of a demo locus: a discretised bell around the commonest repeat
    (TH01 also carries its common 9.3 microvariant)."""
    _, _, lo, hi, mode, _ = locus
    alleles = [str(a) for a in range(lo, hi + 1)]
    weights = [np.exp(-((a - mode) ** 2) / (2 * ((hi - lo) / 4) ** 2)) for a in range(lo, hi + 1)]
    if locus[0] == "TH01":
        alleles.append("9.3")
        weights.append(weights[alleles.index("9")])
    w = np.array(weights) / sum(weights)
    return dict(zip(alleles, w, strict=True))


@dataclass
class PatientChimerism:
    """What the demo simulated for one patient (the truth the files are made from).

    ``donor_id``, ``fraction``, ``str_donor`` and ``ngs_donor`` describe the (first)
    donor; ``extra_donors`` holds (lot, fraction, STR genotype, NGS doses) of further lots
    of a pooled product. ``off_ladder`` names a recipient allele the ladder lacks.
    """

    patient: str
    donor_id: str
    fraction: float
    str_recipient: dict[str, tuple[str, str]]
    str_donor: dict[str, tuple[str, str]]
    ngs_recipient: np.ndarray
    ngs_donor: np.ndarray
    extra_donors: list[tuple[str, float, dict[str, tuple[str, str]], np.ndarray]] = field(default_factory=list)
    off_ladder: dict[str, str] = field(default_factory=dict)

    def donors(self) -> list[tuple[str, float, dict[str, tuple[str, str]], np.ndarray]]:
        """Every donor lot: (lot, fraction, STR genotype, NGS doses)."""
        return [(self.donor_id, self.fraction, self.str_donor, self.ngs_donor), *self.extra_donors]


@dataclass
class ChimerismDesign:
    """The simulated truth of the demo's chimerism part."""

    patients: list[PatientChimerism]
    stutter: dict[str, float]
    peak_width: dict[str, float]
    ngs_markers: list[str]
    ngs_allele_frequency: np.ndarray
    ngs_error: np.ndarray
    ngs_efficiency: np.ndarray
    ngs_alleles: list[tuple[str, str]] = field(default_factory=list)


def design(seed: int, patients: list[str]) -> ChimerismDesign:
    """Draw genotypes, donor lots and biopsy fractions (deterministic for a seed)."""
    rng = np.random.default_rng([seed, K_STREAM])
    stutter = {loc[0]: float(rng.uniform(0.05, 0.10)) for loc in LOCI}
    width = {loc[0]: float(rng.uniform(8.0, 11.0)) for loc in LOCI}
    af = rng.uniform(0.25, 0.75, NGS_MARKERS)
    error = NGS_ERROR * np.exp(NGS_ERROR_SPREAD * rng.standard_normal(NGS_MARKERS))
    efficiency = np.exp(0.2 * rng.standard_normal(NGS_MARKERS))
    bases = "ACGT"
    ngs_alleles = []
    for _ in range(NGS_MARKERS):
        ref, alt = rng.choice(4, 2, replace=False)
        ngs_alleles.append((bases[ref], bases[alt]))

    def str_person() -> dict[str, tuple[str, str]]:
        out = {}
        for loc in LOCI:
            freqs = allele_frequencies(loc)
            pick = rng.choice(len(freqs), 2, p=list(freqs.values()))
            names = list(freqs)
            out[loc[0]] = (names[pick[0]], names[pick[1]])
        return out

    def ngs_person() -> np.ndarray:
        return (rng.random((2, NGS_MARKERS)) < af).sum(axis=0).astype(float)

    lots: dict[str, tuple[dict[str, tuple[str, str]], np.ndarray]] = {}

    def lot(donor_id: str) -> tuple[dict[str, tuple[str, str]], np.ndarray]:
        if donor_id not in lots:
            lots[donor_id] = (str_person(), ngs_person())
        return lots[donor_id]

    sims = []
    categories = list(FRACTION_RANGES)
    for i, p in enumerate(patients):
        donor_id = f"MSC{i // 2 + 1:02d}"
        lo, hi = FRACTION_RANGES[categories[i % len(categories)]]
        fraction = float(rng.uniform(lo, hi)) if hi > 0 else 0.0
        sim = PatientChimerism(p, donor_id, fraction, str_person(), lot(donor_id)[0], ngs_person(), lot(donor_id)[1])
        if i == POOLED_PATIENT:
            extra_id = f"MSC{len(patients) // 2 + 2:02d}"
            extra = float(rng.uniform(*FRACTION_RANGES["low"]))
            sim.extra_donors.append((extra_id, extra, *lot(extra_id)))
        if i == OFF_LADDER_PATIENT:
            # a rare microvariant the allelic ladder lacks: GeneMapper calls it OL
            sim.str_recipient["D21S11"] = (sim.str_recipient["D21S11"][0], "29.1")
            sim.off_ladder["D21S11"] = "29.1"
        sims.append(sim)
    return ChimerismDesign(sims, stutter, width, [f"LYS{i + 1:02d}" for i in range(NGS_MARKERS)], af, error,
                           efficiency, ngs_alleles)


def str_peaks(rng: np.random.Generator, d: ChimerismDesign, sim: PatientChimerism, fractions: list[float],
              sample: str) -> pd.DataFrame:
    """Peaks of one sample: the recipient and each donor lot at ``fractions`` (one per lot)."""
    people = [(sim.str_recipient, 1 - sum(fractions))]
    people += [(genotype, f) for (_, _, genotype, _), f in zip(sim.donors(), fractions, strict=True)]
    return files.str_peaks(rng, LOCI, d.stutter, d.peak_width, people, sample, sim.off_ladder)


def simulate_marker_counts(rng: np.random.Generator, g_recipient: np.ndarray, g_donor: np.ndarray,
                           fraction: float, depth: np.ndarray, error: np.ndarray,
                           rho: float = NGS_RHO) -> tuple[np.ndarray, np.ndarray]:
    """Reads of a recipient/donor mixture: (depth, alternate reads) per marker.

    Depth is Poisson around ``depth``; the alternate fraction follows the beta-binomial
    model with background error ``error`` and overdispersion ``rho``.
    """
    n = rng.poisson(depth)
    p = ((1 - fraction) * g_recipient + fraction * g_donor) / 2
    q = p * (1 - error) + (1 - p) * error
    pi = rng.beta(q * rho, (1 - q) * rho)
    return n.astype(float), rng.binomial(n, pi).astype(float)


def simulate_case(rng: np.random.Generator, markers: int, fraction: float, depth: float = NGS_DEPTH,
                  error: float = NGS_ERROR, rho: float = NGS_RHO,
                  error_spread: float = 0.3, crosstalk: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One unrelated recipient/donor pair and a biopsy at ``fraction``, as count tables.

    Allele frequencies are uniform in 0.2-0.8; each marker's depth varies around
    ``depth`` (lognormal, sd 0.2) and its background error around ``error`` (lognormal,
    sd ``error_spread``: 0.3 by default, ~1 for real amplicon panels, whose noisiest
    markers read ten times the quietest); the references are pure samples sequenced the
    same way, with the same per-marker errors. ``crosstalk`` is the share of every
    sample's reads that come from the other person sequenced in the run (index hopping:
    the recipient reference and the biopsy read that much donor DNA, the donor reference
    that much recipient DNA).

    Returns
    -------
    tuple
        (biopsy, recipient, donor) tables with ``marker``, ``depth``, ``alt_count``.
    """
    af = rng.uniform(0.2, 0.8, markers)
    g_r = (rng.random((2, markers)) < af).sum(0).astype(float)
    g_d = (rng.random((2, markers)) < af).sum(0).astype(float)
    mean_depth = depth * np.exp(0.2 * rng.standard_normal(markers))
    errors = error * np.exp(error_spread * rng.standard_normal(markers))
    names = [f"m{i:03d}" for i in range(markers)]
    tables = []
    for first, second, f in ((g_r, g_d, crosstalk), (g_d, g_r, crosstalk),
                             (g_r, g_d, fraction + crosstalk * (1 - fraction))):
        n, k = simulate_marker_counts(rng, first, second, f, mean_depth, errors, rho)
        tables.append(pd.DataFrame({"marker": names, "depth": n, "alt_count": k}))
    recipient, donor, biopsy = tables
    return biopsy, recipient, donor


def simulate_donors(rng: np.random.Generator, markers: int, fractions: list[float], depth: float = NGS_DEPTH,
                    error: float = NGS_ERROR, rho: float = NGS_RHO,
                    error_spread: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame, list[pd.DataFrame]]:
    """A recipient, several unrelated donors and a biopsy holding each donor at its fraction.

    As :func:`simulate_case`, with ``fractions`` one per donor (their sum at most 1).

    Returns
    -------
    tuple
        (biopsy, recipient, [donor tables]).
    """
    af = rng.uniform(0.2, 0.8, markers)
    people = [(rng.random((2, markers)) < af).sum(0).astype(float) for _ in range(len(fractions) + 1)]
    mean_depth = depth * np.exp(0.2 * rng.standard_normal(markers))
    errors = error * np.exp(error_spread * rng.standard_normal(markers))
    names = [f"m{i:03d}" for i in range(markers)]

    def table(weights: list[float]) -> pd.DataFrame:
        dose = sum(w * g for w, g in zip(weights, people, strict=True))
        n, k = simulate_marker_counts(rng, dose, dose, 0.0, mean_depth, errors, rho)
        return pd.DataFrame({"marker": names, "depth": n, "alt_count": k})

    pure = [table([1.0 if i == j else 0.0 for i in range(len(people))]) for j in range(len(people))]
    biopsy = table([1 - sum(fractions), *fractions])
    return biopsy, pure[0], pure[1:]


def simulate(out: Path, seed: int, patients: list[str], visits: list[str],
             events: int) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    """Write the demo's chimerism files under ``out/chimerism/``.

    Parameters
    ----------
    out
        The batch folder being built.
    seed
        The demo seed (this part uses its own stream, ``[seed, 3]``).
    patients
        Patient codes.
    visits
        The batch's visits; references are taken at the first, biopsies at the last (M1).
    events
        Unused (cytometry's event count).

    Returns
    -------
    tuple
        Sample-sheet rows and truth rows (``donor_fraction`` in % per biopsy sample, or
        ``donor_fraction_<lot>`` per lot for the pooled-product patient).
    """
    d = design(seed, patients)
    rng = np.random.default_rng([seed, K_STREAM, 1])
    folder = Path(out) / "chimerism"
    ref_visit, biopsy_visit = visits[0], visits[-1]
    rows: list[dict[str, str]] = []
    truth: list[dict[str, object]] = []
    profiles: dict[str, dict[str, tuple[str, str]]] = {}
    for i, sim in enumerate(d.patients):
        p = sim.patient
        lots = sim.donors()
        n_lots = len(lots)
        samples = [("REC", "recipient_reference", ref_visit, [0.0] * n_lots)]
        samples += [(f"DON{'' if k == 0 else k + 1}", "donor_reference", ref_visit,
                     [1.0 if j == k else 0.0 for j in range(n_lots)]) for k in range(n_lots)]
        samples.append((f"{biopsy_visit}-BX", "biopsy", biopsy_visit, [f for _, f, _, _ in lots]))
        layout = STR_LAYOUTS[i % len(STR_LAYOUTS)]
        str_file = f"chimerism/{p}_STR_GeneMapper.txt"
        peaks = pd.concat([str_peaks(rng, d, sim, fr, f"{p}-{tag}-STR")
                           for tag, role, _, fr in samples if role != "donor_reference"])
        writer = {"peaks": files.write_peak_table, "genotypes": files.write_genotypes_table,
                  "decimal_comma": files.write_decimal_comma_table}[layout]
        writer(peaks, Path(out) / str_file)
        for tag, role, visit, fr in samples:
            dose_r = sim.ngs_recipient * (1 - sum(fr)) + sum(f * g for (_, _, _, g), f in zip(lots, fr, strict=True))
            n, k = simulate_marker_counts(rng, dose_r, dose_r, 0.0, NGS_DEPTH * d.ngs_efficiency, d.ngs_error)
            if i == VCF_PATIENT:
                ngs_file = f"chimerism/{p}-{tag}-NGS.vcf.gz"
                files.write_vcf_gz(d.ngs_markers, d.ngs_alleles, n, k, f"{p}-{tag}-NGS", Path(out) / ngs_file)
            else:
                ngs_file = f"chimerism/{p}-{tag}-NGS.tsv"
                write_text(files.counts_table(d.ngs_markers, d.ngs_alleles, n, k, rng.poisson(n * 5e-4)),
                           folder / f"{p}-{tag}-NGS.tsv")
            lot_id = lots[fr.index(1.0)][0] if role == "donor_reference" else sim.donor_id
            for kind, file, panel in (("STR", str_file, STR_PANEL), ("NGS", ngs_file, NGS_PANEL)):
                sid = f"{p}-{tag}-{kind}"
                row = {"sample_id": sid, "patient_id": p, "visit": visit, "assay": "chimerism", "file": file,
                       "panel": panel, "role": role, "donor_id": "" if role == "recipient_reference" else lot_id}
                if kind == "STR" and role == "donor_reference":
                    # the MSC lot's STR profile is its certificate's genotype list, named once per lot
                    if lot_id in profiles:
                        continue
                    profiles[lot_id] = lots[fr.index(1.0)][2]
                    row.update(sample_id=f"{lot_id}-STR", file=f"chimerism/{lot_id}_STR_profile.txt",
                               sample_name=lot_id)
                rows.append(row)
                if role == "biopsy":
                    truth += _truth(sid, panel, lots)
    for lot_id, profile in profiles.items():
        files.write_genotype_list({lot_id: profile}, folder / f"{lot_id}_STR_profile.txt")
    return rows, truth


def _truth(sample_id: str, panel: str, lots: list[tuple[str, float, dict[str, tuple[str, str]], np.ndarray]]
           ) -> list[dict[str, object]]:
    """The truth rows of one biopsy: ``donor_fraction``, or one per lot of a pooled product."""
    suffix = len(lots) > 1
    return [{"sample_id": sample_id, "assay": "chimerism", "panel": panel,
             "feature": f"donor_fraction_{lot}" if suffix else "donor_fraction", "value": 100 * frac, "unit": "%",
             "flag": "detected" if frac > 0 else "not_detected"} for lot, frac, _, _ in lots]
