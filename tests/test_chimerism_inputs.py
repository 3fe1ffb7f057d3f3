"""Bad and awkward inputs: each one gets its message, never a silent number.

Swapped and identical references, VCF by content (plain, gzip, renamed), renamed
Area/Height columns, decimal commas, digital PCR exports of four vendors (concentrations
against the vendor's own), machine output (JSON without NaN, exit status 3).
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism import estimate_counts, estimate_str, read_genemapper, read_marker_counts
from immuno.chimerism.dpcr.exports import read_ddpcr
from immuno.chimerism.pipeline.readers import guess_method
from immuno.cli import main
from immuno.demo.chimerism import simulate_case
from immuno.errors import UserError

PEAK_HEADER = "Sample Name\tMarker\tDye\tAllele\tSize\tHeight\tArea"
GENOTYPES = {
    "D3S1358": (("15", "16"), ("14", "17")),
    "vWA": (("16", "18"), ("15", "19")),
    "TH01": (("6", "9.3"), ("7", "8")),
    "D21S11": (("28", "30"), ("29", "31")),
    "FGA": (("21", "23"), ("20", "24")),
}


def _peaks_text(fraction: float, name: str, sep: str = "\t", decimal: str = ".") -> str:
    """One sample's peaks: each person's alleles by dose, each peak with 7 % back-stutter."""
    lines = []
    for i, (locus, (rec, don)) in enumerate(GENOTYPES.items()):
        heights: dict[str, float] = {}
        for allele, share in [(a, 1 - fraction) for a in rec] + [(a, fraction) for a in don]:
            whole, _, part = allele.partition(".")
            below = f"{int(whole) - 1}.{part}" if part else str(int(whole) - 1)
            heights[allele] = heights.get(allele, 0.0) + 2000 * share
            heights[below] = heights.get(below, 0.0) + 0.07 * 2000 * share
        for allele, height in heights.items():
            if height < 50:
                continue
            whole, _, part = allele.partition(".")
            size = (
                f"{80 + 60 * i + 4 * int(whole) + (int(part) if part else 0) + 0.37:.2f}".replace(
                    ".", decimal
                )
            )
            lines.append(
                sep.join([name, locus, "B", allele, size, f"{height:.0f}", f"{9 * height:.0f}"])
            )
    return "\n".join(lines)


def _export(path: Path, samples: dict[str, float], sep: str = "\t", decimal: str = ".") -> Path:
    header = PEAK_HEADER.replace("\t", sep)
    path.write_text(
        "\n".join([header] + [_peaks_text(f, n, sep, decimal) for n, f in samples.items()]) + "\n"
    )
    return path


def _one(peaks: pd.DataFrame, name: str) -> pd.DataFrame:
    return peaks[peaks["sample_name"] == name]


def test_swapped_references_are_named(tmp_path: Path) -> None:
    peaks = read_genemapper(_export(tmp_path / "x.txt", {"REC": 0.0, "DON": 1.0, "BX": 0.03}))
    right = estimate_str(_one(peaks, "BX"), _one(peaks, "REC"), _one(peaks, "DON"))
    assert right.fraction == pytest.approx(0.03, abs=0.005)
    assert "swapped_references" not in {f.flag for f in right.flags}
    swapped = estimate_str(_one(peaks, "BX"), _one(peaks, "DON"), _one(peaks, "REC"))
    flag = next(f for f in swapped.flags if f.flag == "swapped_references")
    assert swapped.fraction == pytest.approx(0.97, abs=0.005)
    assert swapped.lower <= swapped.fraction <= swapped.upper  # never outside its own interval
    assert "matches the donor reference better than the recipient's" in flag.reason
    assert "swapped_references" in swapped.summary()
    # counts: the same warning, and an estimate inside its interval
    rng = np.random.default_rng(3)
    bx, rec, don = simulate_case(rng, 48, 0.01)
    ngs = estimate_counts(bx, don, rec)
    assert ngs.lower <= ngs.fraction <= ngs.upper and ngs.fraction > 0.95
    assert "swapped_references" in {f.flag for f in ngs.flags}


def test_identical_references_fail_with_the_reason(tmp_path: Path) -> None:
    peaks = read_genemapper(_export(tmp_path / "x.txt", {"REC": 0.0, "BX": 0.03}))
    same = estimate_str(_one(peaks, "BX"), _one(peaks, "REC"), _one(peaks, "REC"))
    assert same.failed and same.flag == "not_estimated" and math.isnan(same.fraction)
    assert same.flags[0].flag == "donor_identical_to_recipient"
    assert "MSC product, not the patient" in same.summary()
    # two donors that are the same person
    two = estimate_str(
        _one(peaks, "BX"),
        _one(peaks, "REC"),
        donors={
            "A": _one(read_genemapper(_export(tmp_path / "d.txt", {"D": 1.0})), "D"),
            "B": _one(read_genemapper(_export(tmp_path / "d.txt", {"D": 1.0})), "D"),
        },
    )
    assert two.failed and two.flags[0].flag == "identical_donors"


def _vcf(path: Path, sample: str, alt: list[int], depth: int = 1000) -> None:
    lines = [
        "##fileformat=VCFv4.2",
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}",
    ]
    lines += [
        f"chr1\t{100 + i}\trs{i}\tA\tG\t.\tPASS\t.\tGT:AD\t0/1:{depth - a},{a}"
        for i, a in enumerate(alt)
    ]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.mark.parametrize("name", ["s.vcf", "s.vcf.gz", "s.txt", "s_vcf_gz_renamed"])
def test_vcf_read_by_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    gz = name.endswith(".gz") or "gz" in name
    text_path = tmp_path / ("tmp.gz" if gz else "tmp.vcf")
    _vcf(text_path, "S1", [0, 500, 990])
    shutil.move(text_path, path)
    assert guess_method(path) == "ngs"
    counts = read_marker_counts(path)
    assert counts["alt_count"].tolist() == [0, 500, 990] and counts["depth"].tolist() == [1000] * 3


def test_damaged_gzip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.vcf.gz"
    path.write_bytes(gzip.compress(b"##fileformat=VCFv4.2\n#CHROM\tPOS\n" * 50)[:40])
    with pytest.raises(UserError, match="damaged gzip"):
        read_marker_counts(path)


@pytest.mark.parametrize("column,what", [("Area_rfu_bp", "areas"), ("Peak Heights", "heights")])
def test_renamed_area_or_height_column_is_refused(tmp_path: Path, column: str, what: str) -> None:
    path = _export(tmp_path / "x.txt", {"BX": 0.1})
    original = "Area" if what == "areas" else "Height"
    path.write_text(path.read_text().replace(f"\t{original}", f"\t{column}", 1))
    with pytest.raises(UserError) as err:
        read_genemapper(path)
    text = str(err.value)
    assert f"column {column!r}" in text and f"looks like peak {what}" in text


def test_an_export_without_areas_uses_heights_and_says_so(tmp_path: Path) -> None:
    path = _export(tmp_path / "x.txt", {"REC": 0.0, "DON": 1.0, "BX": 0.2})
    table = pd.read_csv(path, sep="\t").drop(columns="Area")
    table.to_csv(path, sep="\t", index=False)
    peaks = read_genemapper(path)
    assert peaks["area"].isna().all()
    result = estimate_str(_one(peaks, "BX"), _one(peaks, "REC"), _one(peaks, "DON"))
    assert result.fraction == pytest.approx(0.2, abs=0.005)
    assert "heights_used" in {f.flag for f in result.flags}


def test_decimal_commas_are_read(tmp_path: Path) -> None:
    dot = read_genemapper(_export(tmp_path / "dot.txt", {"REC": 0.0, "DON": 1.0, "BX": 0.1}))
    comma = read_genemapper(
        _export(tmp_path / "comma.txt", {"REC": 0.0, "DON": 1.0, "BX": 0.1}, ";", ",")
    )
    assert comma["size"].tolist() == dot["size"].tolist()  # 128,45 is 128.45 bp, not 12845
    assert comma["size"].max() < 450
    a = estimate_str(_one(comma, "BX"), _one(comma, "REC"), _one(comma, "DON"))
    assert a.fraction == pytest.approx(0.1, abs=0.005)


def test_mixed_decimal_marks_are_refused(tmp_path: Path) -> None:
    path = _export(tmp_path / "mixed.txt", {"BX": 0.1}, ";", ",")
    lines = path.read_text().splitlines()
    first = lines[1].split(";")
    first[4] = first[4].replace(",", ".")
    lines[1] = ";".join(first)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="mixes decimal commas and decimal points"):
        read_genemapper(path)


def test_a_genotype_list_is_no_biopsy(tmp_path: Path) -> None:
    refs = tmp_path / "refs.csv"
    refs.write_text(
        "SampleName,Marker,Allele1,Allele2\n"
        + "\n".join(
            f"{who},{locus},{a},{b}"
            for who, k in (("R", 0), ("D", 1))
            for locus, g in GENOTYPES.items()
            for a, b in [g[k]]
        )
        + "\n"
    )
    listed = read_genemapper(refs)
    result = estimate_str(_one(listed, "R"), _one(listed, "R"), _one(listed, "D"))
    assert result.failed and result.flags[0].flag == "biopsy_without_peaks"


# digital PCR: every vendor's concentrations from the counts, to 0.5 %

VENDORS = [
    ("ddpcr_small_QuantaSoft_results.csv", "QuantaSoft", 0.91, 10),
    ("ddpcr_quant_QXManager_results.csv", "QX Manager", 0.85, 12),
    ("allotropy_qiacuity_dpcr_example04.csv", "QIAcuity", 2.837 / 8510 * 1000, 28),
    ("allotropy_AbsoluteQ_multichannel.csv", "Absolute Q", 0.432, 15),
]


@pytest.mark.real
@pytest.mark.parametrize("name,instrument,volume,rows", VENDORS)
def test_digital_pcr_vendor_concentrations(
    real_data: Path, name: str, instrument: str, volume: float, rows: int
) -> None:
    table = read_ddpcr(real_data / "chimerism" / "ddpcr" / name)
    assert set(table["instrument"]) == {instrument}
    assert table["partition_volume_nl"].iloc[0] == pytest.approx(volume, rel=1e-3)
    stated = table[table["vendor_concentration"] >= 1]
    assert len(stated) == rows
    gap = (stated["concentration"] / stated["vendor_concentration"] - 1).abs()
    assert gap.max() <= 0.005, stated.loc[gap.idxmax()]
    # the per-target counts, not the channel overlaps, as the software counts them
    assert (table["positive"] <= table["total"]).all()


@pytest.mark.real
def test_digital_pcr_known_answers_and_amplitudes(real_data: Path) -> None:
    folder = real_data / "chimerism" / "ddpcr"
    small = read_ddpcr(folder / "ddpcr_small_QuantaSoft_results.csv")
    a01 = small[(small["well"] == "A01") & (small["assay"] == "Consensus_FAM")].iloc[0]
    assert (a01["positive"], a01["total"]) == (1901, 15820)
    assert a01["concentration"] == pytest.approx(140.7, abs=0.05)  # the file states 141
    quant = read_ddpcr(folder / "ddpcr_quant_QXManager_results.csv")
    assert quant.loc[0, "concentration"] == pytest.approx(898.38, abs=0.01)
    absq = read_ddpcr(folder / "allotropy_AbsoluteQ_multichannel.csv")
    jun = absq[(absq["sample_name"] == "Sample A1") & (absq["assay"] == "JUN")].iloc[0]
    assert (jun["positive"], jun["total"]) == (2311, 20419) and jun[
        "concentration"
    ] == pytest.approx(278.04, rel=5e-3)
    # the per-droplet amplitude file of well A01 counts what the results file states
    amp = read_ddpcr(folder / "ddpcr_small_A01_Amplitude.csv").set_index("assay")
    assert (amp.loc["Ch1", "positive"], amp.loc["Ch2", "positive"], amp.loc["Ch1", "total"]) == (
        1901,
        1978,
        15820,
    )
    hex_a01 = small[(small["well"] == "A01") & (small["assay"] == "WTspecific_HEX")].iloc[0]
    assert hex_a01["positive"] == 1978
    # a results template with no counts filled in is named, not read as zeros
    with pytest.raises(UserError, match="no well has droplet or partition counts"):
        read_ddpcr(folder / "ddpcr_QuantaSoft_v174_header.csv")


def test_ddpcr_vendor_mismatch_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "qs.csv"
    header = "Well,Sample,TypeAssay,Assay,Concentration,Positives,AcceptedDroplets"
    # 30 positives of 15000 at 0.91 nL is 2.20 copies/uL; the file claims 2.6
    path.write_text(
        f"{header}\nA01,BX,Ch1Unknown,SRY,2.6,30,15000\nA01,BX,Ch2Unknown,RPP30,"
        f"{-math.log(1 - 6000 / 15000) / 0.00091:.1f},6000,15000\n"
    )
    code = main(
        [
            "chimerism",
            "estimate",
            "--sample",
            str(path),
            "--target-assay",
            "SRY",
            "--reference-assay",
            "RPP30",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    saved = json.loads((tmp_path / "out" / "chimerism_result.json").read_text())
    mismatch = [f for f in saved["flags"] if f["flag"] == "vendor_concentration_mismatch"]
    assert (
        len(mismatch) == 1 and "SRY" in mismatch[0]["reason"] and "0.91 nL" in mismatch[0]["reason"]
    )
    capsys.readouterr()


# machine output


def test_json_has_no_nan_and_not_estimable_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _export(tmp_path / "x.txt", {"REC": 0.0, "BX": 0.05})
    args = [
        "chimerism",
        "estimate",
        "--sample",
        str(path),
        "--sample-name",
        "BX",
        "--recipient",
        str(path),
        "--recipient-name",
        "REC",
        "--donor",
        str(path),
        "--donor-name",
        "REC",
        "--out",
        str(tmp_path / "o"),
    ]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 3
    assert out.splitlines()[0].startswith(
        "donor fraction not estimable (str): recipient and donor share"
    )
    text = (tmp_path / "o" / "chimerism_result.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    saved = json.loads(text)
    assert (
        saved["estimable"] is False
        and saved["donor_fraction_pct"] is None
        and saved["flag"] == "not_estimated"
    )
    # an estimate exits 0, its first line the reading, then one line per locus
    donor = _export(tmp_path / "d.txt", {"DON": 1.0})
    code = main(args[:10] + ["--donor", str(donor), "--out", str(tmp_path / "p")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].startswith("donor ") and "LoD" in lines[0]
    assert len(lines) == 1 + len(GENOTYPES) and all(ln.startswith("  ") for ln in lines[1:])
    saved = json.loads((tmp_path / "p" / "chimerism_result.json").read_text())
    assert saved["donor_fraction_pct"] == pytest.approx(5.0, abs=0.5) and saved["estimable"] is True


def test_several_donors_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    from immuno.demo.chimerism import simulate_donors

    bx, rec, donors = simulate_donors(rng, 96, [0.2, 0.05])
    files = {}
    for name, t in (("bx", bx), ("rec", rec), ("d1", donors[0]), ("d2", donors[1])):
        files[name] = tmp_path / f"{name}.tsv"
        lines = ["#SNPID\tTOT_HITS\tREF_HITS\tALT_HITS"] + [
            f"{m}\t{int(n)}\t{int(n - k)}\t{int(k)}"
            for m, n, k in zip(t["marker"], t["depth"], t["alt_count"], strict=True)
        ]
        files[name].write_text("\n".join(lines) + "\n")
    code = main(
        [
            "chimerism",
            "estimate",
            "--sample",
            str(files["bx"]),
            "--recipient",
            str(files["rec"]),
            "--donor",
            str(files["d1"]),
            "--donor-id",
            "MSC01",
            "--donor",
            str(files["d2"]),
            "--donor-id",
            "MSC02",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    line = capsys.readouterr().out.splitlines()[0]
    assert code == 0 and line.startswith("donor MSC01 ") and " | donor MSC02 " in line
    saved = json.loads((tmp_path / "o" / "chimerism_result.json").read_text())
    got = {d["donor_id"]: d["donor_fraction_pct"] for d in saved["donors"]}
    assert got["MSC01"] == pytest.approx(20, abs=1.5) and got["MSC02"] == pytest.approx(5, abs=1.0)
    assert [m["feature"] for m in saved["measurements"]] == [
        "donor_fraction_MSC01",
        "donor_fraction_lod_MSC01",
        "donor_fraction_MSC02",
        "donor_fraction_lod_MSC02",
    ]
    # one id per donor, or none
    code = main(
        [
            "chimerism",
            "estimate",
            "--sample",
            str(files["bx"]),
            "--recipient",
            str(files["rec"]),
            "--donor",
            str(files["d1"]),
            "--donor",
            str(files["d2"]),
            "--donor-id",
            "MSC01",
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    assert code == 2 and "one --donor-id per --donor" in capsys.readouterr().err


def test_str_alleles_no_reference_explains(tmp_path: Path) -> None:
    # a biopsy holding a third person at 10 %: alleles neither the recipient nor the donor has
    third = {
        "D3S1358": ("12", "13"),
        "vWA": ("13", "21"),
        "TH01": ("5", "5"),
        "D21S11": ("33", "34"),
        "FGA": ("26", "27"),
    }
    path = _export(tmp_path / "x.txt", {"REC": 0.0, "DON": 1.0})
    extra = []
    for i, (locus, alleles) in enumerate(third.items()):
        for allele in set(alleles):
            size = f"{80 + 60 * i + 4 * int(allele) + 0.37:.2f}"
            extra.append("\t".join(["BX", locus, "B", allele, size, "400", "3600"]))
    path.write_text(path.read_text() + _peaks_text(0.05, "BX") + "\n" + "\n".join(extra) + "\n")
    peaks = read_genemapper(path)
    result = estimate_str(_one(peaks, "BX"), _one(peaks, "REC"), _one(peaks, "DON"))
    flag = next(f for f in result.flags if f.flag == "unexplained_alleles")
    assert flag.severity == "warning" and "no reference explains at 5 loci" in flag.reason
    assert "D21S11: 33 (400 RFU)" in flag.reason
    assert (result.markers.set_index("marker")["unexplained"] != "").sum() == 5
