"""Real NGS count files in ../shared/data/real/chimerism/ngs without references.

DonorGenotypeFree's Results_Test.csv holds per-allele read counts of the MOAT panel for
eight samples, one column each; ID30 and ID31 are mock mixtures of about 10 % and 5 %
donor (its README). The other six are real cell-free DNA samples without a stated answer,
and the metadata rows above the counts carry names that must not leave the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from immuno.chimerism import read_marker_counts
from immuno.chimerism.ngs.genotype_free import estimate_genotype_free
from immuno.chimerism.pipeline.readers import guess_method
from immuno.cli import main

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def results(real_data: Path) -> Path:
    return real_data / "chimerism" / "ngs" / "DonorGenotypeFree_Results_Test.csv"


def test_wide_allele_table_read_by_content(results: Path) -> None:
    assert guess_method(results) == "ngs"
    counts = read_marker_counts(results, sample_name="ID30")
    # 67 SNPs with two or more allele rows; HLA, ZFX/ZFY and SRY rows are not SNP alleles
    assert len(counts) == 67 and not counts["marker"].str.contains("HLA|ZF|SRY").any()
    rs = counts.set_index("marker").loc["Chr7-1_rs6968649"]
    assert (rs["ref"], rs["alt"], rs["ref_count"], rs["alt_count"]) == ("A", "B", 8000, 959)
    every = read_marker_counts(results)
    assert sorted(every["sample_name"].unique()) == [
        "ID16",
        "ID18",
        "ID19",
        "ID20",
        "ID21",
        "ID22",
        "ID30",
        "ID31",
    ]


@pytest.mark.parametrize("sample,known", [("ID30", 0.10), ("ID31", 0.05)])
def test_mock_mixtures_without_references(results: Path, sample: str, known: float) -> None:
    r = estimate_genotype_free(read_marker_counts(results, sample_name=sample))
    assert abs(r.fraction - known) <= 0.01, r.summary()
    assert r.lower <= r.fraction <= r.upper and r.detected
    assert [f.flag for f in r.flags] == ["no_references"]


def test_cli_without_references_keeps_names_inside(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "chimerism",
            "estimate",
            "--sample",
            str(results),
            "--sample-name",
            "ID31",
            "--out",
            str(tmp_path / "refs"),
        ]
    )
    assert code == 2 and "--without-references" in capsys.readouterr().err
    code = main(
        [
            "chimerism",
            "estimate",
            "--sample",
            str(results),
            "--sample-name",
            "ID31",
            "--without-references",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    line = capsys.readouterr().out.splitlines()[0]
    assert code == 0 and line.startswith("donor 5.") and "no_references" in line
    saved = json.loads((tmp_path / "o" / "chimerism_result.json").read_text())
    assert saved["estimable"] and 4.0 <= saved["donor_fraction_pct"] <= 6.0
    written = (tmp_path / "o" / "markers.tsv").read_text() + json.dumps(saved)
    assert "Patient_Name" not in written and "cfDNA" not in written
