"""Chimerism readers: GeneMapper variants, NGS counts, VCF, ddPCR, qPCR and FISH tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from immuno.chimerism.dpcr.exports import read_ddpcr
from immuno.chimerism.fish.nuclei import read_fish
from immuno.chimerism.ngs.exports import read_marker_counts, read_vcf
from immuno.chimerism.qpcr.ct import read_qpcr_ct
from immuno.chimerism.str.genemapper import read_genemapper
from immuno.errors import UserError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "chimerism"

PEAKS = [
    ("BX1", "BX1.fsa", "D3S1358", "15", "128.1", "2100", "19000"),
    ("BX1", "BX1.fsa", "D3S1358", "16", "132.0", "180", "1650"),
    ("BX1", "BX1.fsa", "TH01", "9.3", "189.2", "1500", "14100"),
    ("BX1", "BX1.fsa", "TH01", "OL", "191.0", "60", "500"),
    ("REC", "REC.hid", "D3S1358", "15.0", "128.0", "4000", "37000"),
]


def _peak_export(path: Path, sep: str) -> Path:
    header = ["Sample Name", "Sample File Name", "Marker", "Allele", "Size", "Height", "Area"]
    lines = [sep.join(header)] + [sep.join(row) for row in PEAKS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sep", ["\t", ",", ";"])
def test_genemapper_peak_export_any_delimiter(tmp_path: Path, sep: str) -> None:
    peaks = read_genemapper(_peak_export(tmp_path / "peaks.txt", sep))
    assert len(peaks) == 5
    bx = peaks[peaks["sample_name"] == "BX1"].set_index("allele")
    assert bx.loc["16", "area"] == 1650
    assert bx.loc["9.3", "height"] == 1500
    assert "OL" in bx.index
    rec = peaks[peaks["sample_name"] == "REC"]
    assert rec["allele"].tolist() == ["15"]  # 15.0 normalised to the ladder label
    assert rec["sample_file"].tolist() == ["REC.hid"]


def test_genemapper_genotype_table(tmp_path: Path) -> None:
    text = (
        "Sample File Name,Marker,Allele 1,Allele 2,Size 1,Size 2,Height 1,Height 2,Area 1,Area 2\n"
        "REC.fsa,vWA,16,18,150.1,158.0,2500,2300,22000,20500\n"
        "REC.fsa,TPOX,8,,219.9,,5100,,45000,\n"
    )
    (tmp_path / "gt.csv").write_text(text)
    peaks = read_genemapper(tmp_path / "gt.csv")
    assert peaks["sample_name"].unique().tolist() == ["REC"]  # .fsa stripped
    vwa = peaks[peaks["marker"] == "vWA"].set_index("allele")
    assert vwa.loc["18", "area"] == 20500 and vwa.loc["16", "height"] == 2500
    assert peaks[peaks["marker"] == "TPOX"]["allele"].tolist() == ["8"]  # empty Allele 2 skipped


def test_genemapper_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("Sample Name\tMarker\tAllele\tSize\nBX\tvWA\t16\t150\n")
    with pytest.raises(UserError) as err:
        read_genemapper(path)
    text = str(err.value)
    assert "bad.txt" in text and "height" in text
    path.write_text("Sample Name\tMarker\tGenotype\nBX\tvWA\t16\n")
    with pytest.raises(UserError, match="Allele"):
        read_genemapper(path)


def test_genemapper_non_numeric_height(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("Sample Name\tMarker\tAllele\tHeight\tArea\nBX\tvWA\t16\thigh\t100\n")
    with pytest.raises(UserError, match="data row 1, column Height"):
        read_genemapper(path)


def test_devyser_counts(tmp_path: Path) -> None:
    path = tmp_path / "S1.tsv"
    path.write_text(
        "#SNPID\tTOT_HITS\tREF_HITS\tALT_HITS\tREF\tALT\n"
        "SNP01\t1003\t990\t10\tA\tG\n"
        "SNP02\t800\t400\t399\tC\tT\n"
    )
    counts = read_marker_counts(path)
    assert counts["marker"].tolist() == ["SNP01", "SNP02"]
    # depth counts only the two alleles: a third base is evidence for neither person
    assert counts["depth"].tolist() == [1000, 799]
    assert counts["alt_count"].tolist() == [10, 399]
    assert counts["sample_name"].unique().tolist() == ["S1"]


def test_devyser_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "S1.tsv"
    path.write_text("#SNPID\tTOT_HITS\tREF_HITS\nSNP01\t10\t10\n")
    with pytest.raises(UserError, match="ALT_HITS"):
        read_marker_counts(path)


@pytest.mark.parametrize("cell", ["-5", "12.5"])
def test_devyser_counts_must_be_whole_and_not_negative(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "S1.tsv"
    path.write_text(
        f"#SNPID\tTOT_HITS\tREF_HITS\tALT_HITS\nSNP01\t1003\t990\t10\nSNP02\t800\t400\t{cell}\n"
    )
    with pytest.raises(UserError, match=r"data row 2, column ALT_HITS.*expected a count"):
        read_marker_counts(path)


@pytest.mark.parametrize("ad", ["12,-3", "x,3"])
def test_vcf_depths_must_be_read_counts(tmp_path: Path, ad: str) -> None:
    path = tmp_path / "x.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        f"chr1\t10\trs1\tA\tG\t.\tPASS\t.\tGT:AD\t0/1:{ad}\n"
    )
    with pytest.raises(UserError, match=r"line 3, sample S1, field AD.*read counts"):
        read_vcf(path)


@pytest.mark.real
def test_vcf_allele_depths_real() -> None:
    if not REAL.is_dir():
        pytest.skip("../shared/data/real/chimerism not present")
    mix = read_vcf(REAL / "allomix_synthetic" / "host_90_donor_10.vcf")
    assert len(mix) == 100
    first = mix.iloc[0]
    # chr1 1000000: AD 1789,211
    assert (first["marker"], first["ref_count"], first["alt_count"], first["depth"]) == (
        "chr1:1000000",
        1789,
        211,
        2000,
    )
    host = read_vcf(REAL / "allomix_synthetic" / "host.vcf", sample_name="HOST_SYNTHETIC")
    assert host["sample_name"].unique().tolist() == ["HOST_SYNTHETIC"]
    with pytest.raises(UserError, match="no sample column"):
        read_vcf(REAL / "allomix_synthetic" / "host.vcf", sample_name="NOPE")


def test_vcf_without_ad(tmp_path: Path) -> None:
    path = tmp_path / "x.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        "chr1\t10\trs1\tA\tG\t.\tPASS\t.\tGT:DP\t0/1:20\n"
    )
    with pytest.raises(UserError, match="AD"):
        read_vcf(path)


def test_ddpcr_qpcr_fish_tables(tmp_path: Path) -> None:
    (tmp_path / "dd.csv").write_text(
        "Well,Sample,Target,Positives,Accepted Droplets\n"
        "A01,BX1,SRY,12,15000\nA01,BX1,RPP30,6000,15000\n"
    )
    dd = read_ddpcr(tmp_path / "dd.csv")
    assert dd["positive"].tolist() == [12, 6000] and dd["assay"].tolist() == ["SRY", "RPP30"]
    (tmp_path / "ct.txt").write_text(
        "Sample Name\tTarget Name\tCT\nBX1\tKMR1\tUndetermined\nBX1\tALB\t24.1\n"
    )
    ct = read_qpcr_ct(tmp_path / "ct.txt")
    assert np.isnan(ct["ct"].iloc[0]) and ct["ct"].iloc[1] == pytest.approx(24.1)
    (tmp_path / "fish.csv").write_text("Sample,Donor nuclei,Nuclei scored\nBX1,2,512\n")
    fish = read_fish(tmp_path / "fish.csv")
    assert fish.loc[0, "donor_nuclei"] == 2 and fish.loc[0, "nuclei"] == 512
    (tmp_path / "bad.csv").write_text("Sample,Target,Positives\nBX1,SRY,12\n")
    with pytest.raises(UserError, match="total"):
        read_ddpcr(tmp_path / "bad.csv")
