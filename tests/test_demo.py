"""The demo batch as a whole: deterministic, complete, and valid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from immuno.cli import main
from immuno.demo import TRUTH_COLUMNS, make_demo_batch
from immuno.io import sha256_file

from .conftest import SMALL_DEMO


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(small_demo: Path, tmp_path: Path) -> None:
    again = make_demo_batch(tmp_path / "demo", **SMALL_DEMO)
    assert _digests(again) == _digests(small_demo)


def test_other_seed_gives_other_data(small_demo: Path, tmp_path: Path) -> None:
    other = make_demo_batch(tmp_path / "demo", **(SMALL_DEMO | {"seed": SMALL_DEMO["seed"] + 1}))
    a, b = _digests(small_demo), _digests(other)
    assert a.keys() == b.keys()
    assert a["truth.csv"] != b["truth.csv"]


def test_demo_holds_every_assay_and_truth(small_demo: Path) -> None:
    sheet = pd.read_csv(small_demo / "samplesheet.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(small_demo / "truth.csv")
    assert list(truth.columns) == TRUTH_COLUMNS
    assert set(sheet.assay) == {"cytometry", "chemokine", "chimerism"}
    patients = {f"P{i:02d}" for i in range(1, SMALL_DEMO["patients"] + 1)}
    assert patients <= set(sheet.patient_id)
    for assay, feature in [("cytometry", "Th1"), ("cytometry", "Treg"), ("chemokine", "CXCL10"),
                           ("chimerism", "donor_fraction")]:
        rows = truth[(truth.assay == assay) & (truth.feature == feature)]
        assert len(rows) > 0, (assay, feature)
        assert set(rows.sample_id) <= set(sheet.sample_id)
    assert (truth.feature.str.startswith("spillover:")).any()
    # every file the sheet names exists, and nothing outside the sheet is data; the one
    # folder is the LEGENDplex plate, one FCS file per well
    folders = {f for f in sheet.file if (small_demo / f).is_dir()}
    assert all((small_demo / f).is_file() for f in set(sheet.file) - folders)
    assert folders == {"chemokine/LEGENDPLEX_PLATE_01"}
    assert len(list((small_demo / "chemokine/LEGENDPLEX_PLATE_01").glob("*.fcs"))) == 30
    assert all((small_demo / f).is_file() for f in sheet.layout if f)


def test_cli_demo_refuses_to_overwrite(small_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(small_demo)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_demo_rejects_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(tmp_path / "d"), "--patients", "0"]) == 2
    assert "--patients" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
