"""The sample sheet's per-biopsy DNA input bounds the chimerism LoD (3 donor genomes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from immuno.chimerism import process_batch
from immuno.contract.batch import load_batch
from immuno.demo import make_demo_batch
from immuno.errors import UserError

PANELS = Path(__file__).resolve().parents[1] / "panels"
PG_PER_GENOME = 6.6


@pytest.fixture(scope="module")
def chim_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_batch(
        tmp_path_factory.mktemp("dna") / "dna", seed=3, patients=3, assays=("chimerism",)
    )


def _with_input(batch: Path, sample: str, value: str) -> None:
    path = batch / "samplesheet.csv"
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet["dna_input_ng"] = ""
    sheet.loc[sheet.sample_id == sample, "dna_input_ng"] = value
    sheet.to_csv(path, index=False)


def test_low_input_raises_the_lod_and_is_flagged(chim_demo: Path, tmp_path: Path) -> None:
    sample = "P01-M1-BX-NGS"
    _with_input(chim_demo, sample, "0.5")  # 0.5 ng = ~76 genomes: LoD >= 3 / 76 = 3.96 %
    written = process_batch(load_batch(chim_demo, panels_dir=PANELS), tmp_path / "out")
    m = pd.read_parquet(written["measurements"])
    lod = m[(m.sample_id == sample) & (m.feature == "donor_fraction_lod")].value.iloc[0]
    genomes = 500.0 / PG_PER_GENOME
    assert lod == pytest.approx(100 * 3 / genomes, rel=1e-6)
    flags = pd.read_parquet(written["flags"])
    row = flags[(flags.sample_id == sample) & (flags.flag == "low_dna_input")]
    assert len(row) == 1 and "sample sheet" in row.reason.iloc[0]
    # the other biopsies keep their assay LoD, far below
    others = m[
        (m.feature == "donor_fraction_lod")
        & (m.sample_id != sample)
        & (m.panel == "chimerism_ngs48")
    ]
    assert (others.value < 1).all()


def test_input_must_be_a_positive_number(chim_demo: Path) -> None:
    _with_input(chim_demo, "P01-M1-BX-NGS", "twenty")
    with pytest.raises(UserError) as err:
        load_batch(chim_demo, panels_dir=PANELS)
    assert any(
        "column dna_input_ng" in p.where and "'twenty'" in p.what for p in err.value.problems
    )
