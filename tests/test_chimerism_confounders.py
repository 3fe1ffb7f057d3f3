"""Confounders named in flags: low DNA input and donor alleles in the recipient's own reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism import estimate_counts, estimate_ddpcr
from immuno.chimerism.common.confounders import apply_input_limit, genome_equivalents
from immuno.chimerism.pipeline.process import estimate_batch
from immuno.contract.batch import load_batch
from immuno.demo import make_demo_batch
from immuno.demo.chimerism import simulate_marker_counts

PANELS = Path(__file__).resolve().parents[1] / "panels"

M = 48


def _table(n: np.ndarray, k: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"marker": [f"m{i}" for i in range(len(n))], "depth": n, "alt_count": k})


def _people(
    seed: int,
) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    af = rng.uniform(0.2, 0.8, M)
    g_r = (rng.random((2, M)) < af).sum(0).astype(float)
    g_d = (rng.random((2, M)) < af).sum(0).astype(float)
    return rng, g_r, g_d, np.full(M, 1000.0), np.full(M, 1e-3)


def test_genome_equivalents_per_nanogram() -> None:
    # 6.6 pg per diploid genome: 20 ng ~ 3,000 GE, about the input a 0.1 % LoD needs
    assert genome_equivalents(1.0) == pytest.approx(151.5, abs=0.1)
    assert 3 / genome_equivalents(20.0) == pytest.approx(3 * 6.6 / 20_000)


def test_low_input_raises_the_lod_and_says_so() -> None:
    rng, g_r, g_d, depth, error = _people(4)
    rec = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    bx = _table(*simulate_marker_counts(rng, g_r, g_d, 0.0, depth, error))
    plenty = estimate_counts(bx, rec, don, genome_equivalents=genome_equivalents(100.0))
    assert "low_dna_input" not in [f.flag for f in plenty.flags]
    assert plenty.details["genome_equivalents"] == pytest.approx(15152, rel=1e-3)
    # 2 ng ~ 303 GE: nothing below ~1 % can be claimed, whatever the sequencing depth
    scant = estimate_counts(bx, rec, don, genome_equivalents=genome_equivalents(2.0))
    assert scant.lod == pytest.approx(3 / 303.03, rel=1e-3) and scant.lod > plenty.lod
    assert scant.details["assay_lod"] == pytest.approx(plenty.lod)
    flag = next(f for f in scant.flags if f.flag == "low_dna_input")
    assert flag.severity == "warning" and "303 genome equivalents" in flag.reason
    assert not scant.detected and scant.upper >= scant.lod
    assert "low_dna_input" in scant.summary() and "< LoD 0.99 %" in scant.summary()


def test_input_limit_leaves_failed_and_unknown_alone() -> None:
    r = estimate_ddpcr(10, 20000, 8000, 20000)
    assert apply_input_limit(r, None) is r
    # the droplets themselves count the genomes analysed: ~10,200 GE here, LoD unchanged
    ge = r.details["genome_equivalents_analysed"]
    assert ge == pytest.approx(-np.log1p(-8000 / 20000) * 20000 / 2, rel=1e-9)
    assert "low_dna_input" not in [f.flag for f in r.flags]


def test_donor_alleles_in_the_recipient_reference_are_flagged() -> None:
    rng, g_r, g_d, depth, error = _people(8)
    don = _table(*simulate_marker_counts(rng, g_d, g_d, 0, depth, error))
    bx = _table(*simulate_marker_counts(rng, g_r, g_d, 0.02, depth, error))
    clean = _table(*simulate_marker_counts(rng, g_r, g_r, 0, depth, error))
    assert "recipient_background" not in [f.flag for f in estimate_counts(bx, clean, don).flags]
    # the reference holds 1 % of the donor's alleles (e.g. earlier microchimerism or a
    # contaminated tube): the biopsy is still estimated, with the warning
    tainted = _table(*simulate_marker_counts(rng, g_r, g_d, 0.01, depth, error))
    result = estimate_counts(bx, tainted, don)
    flag = next(f for f in result.flags if f.flag == "recipient_background")
    assert flag.severity == "warning" and "recipient reference" in flag.reason
    assert result.details["recipient_reference_fraction"] == pytest.approx(0.01, abs=0.004)
    assert result.detected and not result.failed


def test_panel_dna_input_bounds_the_batch_lod(tmp_path: Path) -> None:
    batch_dir = make_demo_batch(tmp_path / "chim_input", seed=5, patients=3, assays=("chimerism",))
    panels = tmp_path / "panels"
    shutil.copytree(PANELS, panels)
    for name, ng in (("chimerism_ngs48", 2), ("chimerism_str16", 1)):
        path = panels / f"{name}.yaml"
        path.write_text(
            path.read_text(encoding="utf-8") + f"dna_input_ng: {ng}\n", encoding="utf-8"
        )
    results = estimate_batch(load_batch(batch_dir, panels_dir=panels))
    truth = pd.read_csv(batch_dir / "truth.csv").set_index("sample_id")["value"]
    by_panel = {
        "chimerism_ngs48": 3 / genome_equivalents(2),
        "chimerism_str16": 3 / genome_equivalents(1),
    }
    for br in results:
        r = br.result
        # every LoD respects 3 donor genomes; where that binds, the flag names the input
        assert r.lod >= by_panel[br.panel] * (1 - 1e-9), (br.row["sample_id"], r.summary())
        assert r.details["genome_equivalents"] == pytest.approx(3 / by_panel[br.panel])
        binds = "assay_lod" in r.details
        assert binds == ("low_dna_input" in [f.flag for f in r.flags])
        if br.panel == "chimerism_ngs48":
            # 2 ng (303 GE) limits the NGS assay, whose own LoD is ~0.2-0.4 % at 1000x
            assert binds and r.lod == pytest.approx(by_panel[br.panel])
            if truth[br.row["sample_id"]] == 0:
                assert not r.detected
