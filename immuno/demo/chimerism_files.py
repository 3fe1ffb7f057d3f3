"""The demo's chimerism files, written the way labs' instruments and colleagues write them.

STR (the quirks met in the real GeneMapper exports in ../shared/data/real/chimerism/str):

* a Sample/Peak table for most patients, a GeneMapper ID-X genotypes table
  (``Allele.1 .. Allele.n``, ``Size.n``, ``Height.n``, ``NA`` padding) for another, and a
  ``;``-delimited re-save with decimal commas for a third;
* off-ladder peaks: small ``OL`` artefact peaks, and a recipient whose rare allele is off
  the ladder (``OL`` at its size in the reference and in the biopsy alike);
* pull-up: the tallest peaks of a sample bleed into the next dye at the same size, at a
  few percent of their height (labelled as an allele where that size falls in a bin);
* the MSC lot's profile as a genotype list (allele calls only, homozygotes entered twice,
  a ``Remark`` column), as a product's certificate of analysis gives it.

NGS: Devyser-style count tables, and single-sample ``.vcf.gz`` files for one patient.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.io import atomic_path, write_text

ANALYTICAL_THRESHOLD = 50.0
PEAK_NOISE = 0.05
#: pull-up: share of a parent's height that bleeds into the next dye
PULLUP = (0.02, 0.06)
#: next dye for pull-up (blue into green, green into yellow, ...)
NEXT_DYE = {"B": "G", "G": "Y", "Y": "R", "R": "B"}


def allele_size(locus: tuple[str, str, int, int, float, float], allele: str) -> float:
    """Fragment size (bp) of an allele: 4 bp per repeat, plus the microvariant's extra bases."""
    whole, _, part = allele.partition(".")
    return locus[5] + 4 * int(whole) + (int(part) if part else 0)


def bin_label(loci: list[tuple[str, str, int, int, float, float]], dye: str, size: float) -> tuple[str, str]:
    """(marker, allele) GeneMapper would give a peak of ``dye`` at ``size``: the allele whose
    bin (+/- 0.5 bp) holds it, else ``OL`` in the locus whose range holds it."""
    for loc in loci:
        if loc[1] != dye:
            continue
        lo, hi = allele_size(loc, str(loc[2] - 1)) - 2, allele_size(loc, str(loc[3] + 1)) + 2
        if not lo <= size <= hi:
            continue
        for rep in range(loc[2] - 2, loc[3] + 3):
            if abs(allele_size(loc, str(rep)) - size) <= 0.5:
                return loc[0], str(rep)
        return loc[0], "OL"
    return "", ""


def str_peaks(rng: np.random.Generator, loci: list[tuple[str, str, int, int, float, float]],
              stutter: dict[str, float], width: dict[str, float], people: list[tuple[dict[str, tuple[str, str]], float]],
              sample: str, off_ladder: dict[str, str] | None = None) -> pd.DataFrame:
    """Peaks of one sample: a mixture of ``people`` (genotype, fraction), with stutter,
    peak noise, small off-ladder artefacts and pull-up into the next dye.

    ``off_ladder`` names alleles (by locus) that the ladder lacks: exported as ``OL``.
    """
    load = rng.uniform(1200.0, 2500.0)
    rows = []
    for loc in loci:
        name = loc[0]
        dose: dict[str, float] = {}
        for genotype, fraction in people:
            for allele in genotype[name]:
                dose[allele] = dose.get(allele, 0.0) + fraction
        per_copy = load * rng.uniform(0.7, 1.3)
        height: dict[str, float] = {}
        for allele, copies in dose.items():
            if copies <= 0:
                continue
            h = per_copy * copies * (1 + PEAK_NOISE * rng.standard_normal())
            height[allele] = height.get(allele, 0.0) + h
            whole, _, part = allele.partition(".")
            below = f"{int(whole) - 1}.{part}" if part else str(int(whole) - 1)
            s = stutter[name] * h * (1 + 0.1 * rng.standard_normal())
            height[below] = height.get(below, 0.0) + s
        for allele, h in sorted(height.items(), key=lambda kv: allele_size(loc, kv[0])):
            if h < ANALYTICAL_THRESHOLD:
                continue
            size = allele_size(loc, allele) + 0.1 * rng.standard_normal()
            label = "OL" if (off_ladder or {}).get(name) == allele else allele
            rows.append(_peak(sample, name, loc[1], label, size, h, width[name], rng))
        if rng.random() < 0.12:
            # an off-ladder artefact between the bins (a dye blob, a sizing glitch)
            size = allele_size(loc, str(int(rng.integers(loc[2], loc[3] + 1)))) + rng.uniform(1.6, 2.4)
            rows.append(_peak(sample, name, loc[1], "OL", size, rng.uniform(60.0, 140.0), width[name], rng))
    peaks = pd.DataFrame(rows)
    pulls = []
    for _, p in peaks.nlargest(2, "Height").iterrows():
        dye = NEXT_DYE[p["_dye"]]
        marker, allele = bin_label(loci, dye, p["Size"])
        h = p["Height"] * rng.uniform(*PULLUP)
        if marker and h >= ANALYTICAL_THRESHOLD:
            pulls.append(_peak(sample, marker, dye, allele, p["Size"] + 0.05 * rng.standard_normal(), h,
                               width[marker], rng))
    if pulls:
        peaks = pd.concat([peaks, pd.DataFrame(pulls)], ignore_index=True)
    order = {loc[0]: i for i, loc in enumerate(loci)}
    return peaks.sort_values(["Marker", "Size"], key=lambda c: c.map(order) if c.name == "Marker" else c,
                             kind="stable").reset_index(drop=True)


def _peak(sample: str, marker: str, dye: str, allele: str, size: float, height: float, width: float,
          rng: np.random.Generator) -> dict[str, object]:
    return {"Sample Name": sample, "Sample File Name": f"{sample}.fsa", "Marker": marker, "_dye": dye,
            "Allele": allele, "Size": round(size, 2), "Height": int(round(height)),
            "Area": int(round(height * width * (1 + 0.01 * rng.standard_normal()))),
            "Data Point": int(round(1000 + 10 * size))}


def write_peak_table(peaks: pd.DataFrame, path: Path) -> Path:
    """A GeneMapper Sample/Peak export (tab-separated; dye and peak number in one column)."""
    table = peaks.copy()
    table.insert(3, "Dye/Sample Peak", [f"{d},{i + 1}" for i, d in enumerate(table.pop("_dye"))])
    return write_text(table.to_csv(sep="\t", index=False, lineterminator="\n"), path)


def write_decimal_comma_table(peaks: pd.DataFrame, path: Path) -> Path:
    """The same export re-saved by a European Excel: ``;``-delimited, decimal commas."""
    table = peaks.copy()
    table.insert(3, "Dye/Sample Peak", [f"{d},{i + 1}" for i, d in enumerate(table.pop("_dye"))])
    table["Size"] = table["Size"].map(lambda v: f"{v:.2f}".replace(".", ","))
    return write_text(table.to_csv(sep=";", index=False, lineterminator="\n"), path)


def write_genotypes_table(peaks: pd.DataFrame, path: Path, columns: int = 10) -> Path:
    """A GeneMapper ID-X genotypes table: one row per sample and marker, ``NA`` padding."""
    rows = []
    for (sample, marker), g in peaks.groupby(["Sample Name", "Marker"], sort=False):
        row: dict[str, object] = {"Sample.Name": sample, "Marker": marker, "Dye": g["_dye"].iloc[0]}
        g = g.head(columns)
        for key, col in (("Allele", "Allele"), ("Size", "Size"), ("Height", "Height"), ("Area", "Area")):
            values = g[col].tolist() + ["NA"] * (columns - len(g))
            for i, v in enumerate(values, start=1):
                row[f"{key}.{i}"] = v if key != "Allele" or v != "NA" else ""
        rows.append(row)
    return write_text(pd.DataFrame(rows).to_csv(sep="\t", index=False, lineterminator="\n"), path)


def write_genotype_list(profiles: dict[str, dict[str, tuple[str, str]]], path: Path) -> Path:
    """Reference profiles as allele calls only: homozygotes entered twice, a Remark column."""
    lines = ["Sample.Name\tMarker\tAllele.1\tAllele.2\tRemark"]
    for name, profile in profiles.items():
        for i, (marker, alleles) in enumerate(profile.items()):
            a, b = sorted(alleles, key=float)
            remark = "Double entry for homozygotes" if i == 0 else ""
            lines.append(f"{name}\t{marker}\t{a}\t{b}\t{remark}")
    return write_text("\n".join(lines) + "\n", path)


def counts_table(markers: list[str], alleles: list[tuple[str, str]], n: np.ndarray, k: np.ndarray,
                 other: np.ndarray) -> str:
    """A Devyser-style count table of one sample."""
    lines = ["#SNPID\tTOT_HITS\tREF_HITS\tALT_HITS\tREF\tALT"]
    for i, marker in enumerate(markers):
        ref, alt = alleles[i]
        lines.append(f"{marker}\t{int(n[i] + other[i])}\t{int(n[i] - k[i])}\t{int(k[i])}\t{ref}\t{alt}")
    return "\n".join(lines) + "\n"


def write_vcf_gz(markers: list[str], alleles: list[tuple[str, str]], n: np.ndarray, k: np.ndarray, sample: str,
                 path: Path) -> Path:
    """A single-sample VCF with allele depths, gzip-compressed (fixed mtime: byte-identical re-runs)."""
    out = io.StringIO()
    out.write("##fileformat=VCFv4.2\n##FORMAT=<ID=AD,Number=R,Type=Integer,Description=\"Allelic depths\">\n")
    out.write("##FORMAT=<ID=DP,Number=1,Type=Integer,Description=\"Read depth\">\n")
    out.write(f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n")
    for i, marker in enumerate(markers):
        ref, alt = alleles[i]
        out.write(f"chr1\t{100000 + 1000 * i}\t{marker}\t{ref}\t{alt}\t.\tPASS\t.\tAD:DP\t"
                  f"{int(n[i] - k[i])},{int(k[i])}:{int(n[i])}\n")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh, gzip.GzipFile("", "wb", fileobj=fh, mtime=0) as gz:
        gz.write(out.getvalue().encode("utf-8"))
    return path
