"""Batches genotyped by digital PCR, qPCR, FISH and a multi-sample VCF (panels made here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from immuno.chimerism import check_inputs, process_batch
from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.panels import load_panel
from immuno.errors import UserError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "chimerism"

PANELS = {
    "chim_sry_ddpcr": "method: ddpcr\nddpcr: {target_assay: SRY, reference_assay: RPP30, target_copies: 1, reference_copies: 2}\n",
    "chim_kmr_qpcr": "method: qpcr\nqpcr: {marker_target: KMR5, reference_target: ALB, efficiency: 1.0, lod: 0.001}\n",
    "chim_xy_fish": "method: fish\n",
    "chim_vcf": "method: ngs\n",
}
SHEET = [
    # sample_id, patient, visit, file, panel, role, donor_id, sample_name
    ("P01-REC-DD", "P01", "D0", "dd.csv", "chim_sry_ddpcr", "recipient_reference", "", "REC1"),
    ("P01-BX-DD", "P01", "M1", "dd.csv", "chim_sry_ddpcr", "biopsy", "MSC01", "BX1"),
    ("P01-DON-Q", "P01", "D0", "ct.txt", "chim_kmr_qpcr", "donor_reference", "MSC01", "CAL"),
    ("P01-BX-Q", "P01", "M1", "ct.txt", "chim_kmr_qpcr", "biopsy", "MSC01", "BX1"),
    ("P01-BX-F", "P01", "M1", "fish.csv", "chim_xy_fish", "biopsy", "MSC01", "BX1"),
]


def _panels(folder: Path) -> Path:
    folder.mkdir()
    for name, body in PANELS.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\nassay: chimerism\nversion: 1\n{body}")
    return folder


def _batch(root: Path) -> Path:
    root.mkdir()
    (root / "dd.csv").write_text(
        "Well,Sample,Target,Positives,Accepted Droplets\n"
        "A01,REC1,SRY,2,18000\nA01,REC1,RPP30,9000,18000\n"
        "B01,BX1,SRY,40,17000\nB01,BX1,RPP30,8000,17000\n"
        "B02,BX1,SRY,35,16000\nB02,BX1,RPP30,7500,16000\n"
    )
    (root / "ct.txt").write_text(
        "Sample Name\tTarget Name\tCT\n"
        "CAL\tKMR5\t24.0\nCAL\tKMR5\t24.2\nCAL\tALB\t23.0\nCAL\tALB\t23.1\n"
        "BX1\tKMR5\t33.0\nBX1\tKMR5\t33.3\nBX1\tALB\t23.1\nBX1\tALB\t22.9\n"
    )
    (root / "fish.csv").write_text("Sample,Donor nuclei,Nuclei scored\nBX1,3,600\n")
    cols = ["sample_id", "patient_id", "visit", "file", "panel", "role", "donor_id", "sample_name"]
    sheet = pd.DataFrame(SHEET, columns=cols).assign(assay="chimerism")
    sheet.to_csv(root / "samplesheet.csv", index=False)
    return root


def test_panel_schema_rejects_a_ddpcr_panel_without_assays(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nassay: chimerism\nversion: 1\nmethod: ddpcr\n")
    with pytest.raises(UserError, match="ddpcr"):
        load_panel(bad)
    bad.write_text("name: bad\nassay: chimerism\nversion: 1\nmethod: sanger\n")
    with pytest.raises(UserError, match="method"):
        load_panel(bad)


def test_pcr_and_fish_biopsies_in_a_batch(tmp_path: Path) -> None:
    panels = _panels(tmp_path / "panels")
    batch = load_batch(_batch(tmp_path / "pcr_batch"), panels_dir=panels)
    assert check_inputs(batch.rows("chimerism"), batch.root, batch.panels) == []
    written = process_batch(batch, tmp_path / "out", plots=False)
    m = pd.read_parquet(written["measurements"])
    frac = m[m["feature"] == "donor_fraction"].set_index("sample_id")
    # ddPCR: wells summed per assay, Poisson-corrected, SRY x1 vs RPP30 x2
    lam_y, lam_r = -math.log(1 - 75 / 33000), -math.log(1 - 15500 / 33000)
    assert frac.loc["P01-BX-DD", "value"] == pytest.approx(100 * lam_y / (lam_r / 2), rel=1e-9)
    assert frac.loc["P01-BX-DD", "flag"] == "detected"
    # qPCR: ddCt = (33.15 - 23.0) - (24.1 - 23.05) = 9.1 cycles
    assert frac.loc["P01-BX-Q", "value"] == pytest.approx(100 * 2**-9.1, rel=1e-9)
    # FISH: 3 of 600 nuclei
    assert frac.loc["P01-BX-F", "value"] == pytest.approx(0.5)
    assert (frac["qc_pass"]).all()


def test_missing_calibrator_and_sample_name_are_reported(tmp_path: Path) -> None:
    panels = _panels(tmp_path / "panels")
    root = _batch(tmp_path / "pcr_batch")
    sheet = pd.read_csv(root / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet = sheet[sheet["sample_id"] != "P01-DON-Q"]
    sheet.loc[sheet["sample_id"] == "P01-BX-F", "sample_name"] = "BX9"
    sheet.to_csv(root / "samplesheet.csv", index=False)
    batch = load_batch(root, panels_dir=panels)
    problems = [str(p) for p in check_inputs(batch.rows("chimerism"), batch.root, batch.panels)]
    assert any("P01-BX-Q" in p and "donor_reference" in p for p in problems), problems
    assert any("fish.csv" in p and "'BX9'" in p for p in problems), problems


@pytest.mark.real
def test_multi_sample_vcf_in_a_batch(tmp_path: Path) -> None:
    folder = REAL / "allomix_synthetic"
    if not folder.is_dir():
        pytest.skip("../shared/data/real/chimerism not present")
    panels = _panels(tmp_path / "panels")
    root = tmp_path / "vcf_batch"
    root.mkdir()
    # one VCF holding the three samples side by side, as joint callers write them
    tables = [
        (folder / n).read_text().splitlines()
        for n in ("host.vcf", "donor.vcf", "host_90_donor_10.vcf")
    ]
    lines = [ln for ln in tables[0] if ln.startswith("##")]
    body = [[ln for ln in t if not ln.startswith("##")] for t in tables]
    for rows in zip(*body, strict=True):
        lines.append("\t".join([*rows[0].split("\t")[:9]] + [r.split("\t")[9] for r in rows]))
    (root / "joint.vcf").write_text("\n".join(lines) + "\n")
    sheet = pd.DataFrame(
        [
            (
                "H-REC",
                "H01",
                "D0",
                "joint.vcf",
                "chim_vcf",
                "recipient_reference",
                "",
                "HOST_SYNTHETIC",
            ),
            (
                "H-DON",
                "H01",
                "D0",
                "joint.vcf",
                "chim_vcf",
                "donor_reference",
                "D01",
                "DONOR_SYNTHETIC",
            ),
            ("H-BX", "H01", "M1", "joint.vcf", "chim_vcf", "biopsy", "D01", "host_90_donor_10"),
        ],
        columns=[
            "sample_id",
            "patient_id",
            "visit",
            "file",
            "panel",
            "role",
            "donor_id",
            "sample_name",
        ],
    )
    sheet.assign(assay="chimerism").to_csv(root / "samplesheet.csv", index=False)
    batch = load_batch(root, panels_dir=panels)
    assert check_inputs(batch.rows("chimerism"), batch.root, batch.panels) == []
    written = process_batch(batch, tmp_path / "out", plots=False)
    m = pd.read_parquet(written["measurements"]).set_index("feature")
    assert abs(m.loc["donor_fraction", "value"] - 10.0) <= 1.0


def test_cli_estimates_pcr_and_fish_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _batch(tmp_path / "files")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["chimerism", "estimate", *args, "--out", str(tmp_path / "out")])
        got = capsys.readouterr()
        return code, got.out.strip(), got.err

    # ddPCR: the same numbers as the batch step (Poisson-corrected, wells summed)
    code, line, _ = run(
        "--method",
        "ddpcr",
        "--sample",
        str(root / "dd.csv"),
        "--sample-name",
        "BX1",
        "--recipient",
        str(root / "dd.csv"),
        "--recipient-name",
        "REC1",
        "--target-assay",
        "SRY",
        "--reference-assay",
        "RPP30",
    )
    lam_y, lam_r = -math.log(1 - 75 / 33000), -math.log(1 - 15500 / 33000)
    saved = json.loads((tmp_path / "out" / "chimerism_result.json").read_text())
    assert code == 0 and line.startswith("donor ") and ", detected; LoD " in line
    assert saved["donor_fraction_pct"] == pytest.approx(100 * lam_y / (lam_r / 2), rel=1e-9)
    assert saved["details"]["genome_equivalents_analysed"] == pytest.approx(
        lam_r * 33000 / 2, rel=1e-9
    )
    # qPCR against the MSC calibrator: ddCt 9.1 cycles
    code, line, _ = run(
        "--method",
        "qpcr",
        "--sample",
        str(root / "ct.txt"),
        "--sample-name",
        "BX1",
        "--donor",
        str(root / "ct.txt"),
        "--donor-name",
        "CAL",
        "--marker-target",
        "KMR5",
        "--reference-target",
        "ALB",
    )
    saved = json.loads((tmp_path / "out" / "chimerism_result.json").read_text())
    assert code == 0 and saved["donor_fraction_pct"] == pytest.approx(100 * 2**-9.1, rel=1e-9)
    # FISH: 3 of 600 nuclei, Clopper-Pearson interval
    code, line, _ = run("--method", "fish", "--sample", str(root / "fish.csv"))
    assert code == 0 and line.startswith("donor 0.50 % [0.10, 1.45]"), line
    # what is missing is named: the calibrator, and the assay (with those the file holds)
    code, _, err = run(
        "--method",
        "qpcr",
        "--sample",
        str(root / "ct.txt"),
        "--sample-name",
        "BX1",
        "--marker-target",
        "KMR5",
        "--reference-target",
        "ALB",
    )
    assert code == 2 and "--donor: the qpcr method needs the donor reference export" in err, err
    code, _, err = run(
        "--method",
        "ddpcr",
        "--sample",
        str(root / "dd.csv"),
        "--sample-name",
        "BX1",
        "--target-assay",
        "SRY",
    )
    assert code == 2 and "--reference-assay" in err and "RPP30, SRY" in err
