"""Shared fixtures: the real public files and a small demo batch generated once per run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
#: real public files (vendor exports, GatingML compliance suite, genotyping), never copied here
REAL = PROJECT.parent / "shared" / "data" / "real"

SMALL_DEMO = {"seed": 7, "patients": 2, "events": 4000}


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real public files; skips the test when it is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real public files not available at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo batch (2 patients, 4000 events per tube), generated once. Read-only."""
    from immuno.demo import make_demo_batch

    return make_demo_batch(tmp_path_factory.mktemp("demo") / "demo", **SMALL_DEMO)


@pytest.fixture()
def demo_copy(small_demo: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the small demo batch (for tests that break it)."""
    dest = tmp_path / small_demo.name
    shutil.copytree(small_demo, dest)
    return dest


#: cytometry tubes kept in the lean batch: two gated tubes and the compensation controls
LEAN_TUBES = ("P01-D0-SURF", "P02-D0-SURF")


@pytest.fixture(scope="session")
def lean_batch(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo batch cut to a few jobs, for runs that are repeated (kills, the wheel).

    Both patients keep their chemokine and chimerism samples; cytometry keeps one surface
    tube per patient and the compensation controls. Read-only: copy it to change it.
    """
    import pandas as pd

    from immuno.contract.batch import write_sheet

    dest = tmp_path_factory.mktemp("lean") / "lean"
    shutil.copytree(small_demo, dest)
    sheet = pd.read_csv(dest / "samplesheet.csv", dtype=str, keep_default_na=False)
    keep = ((sheet["assay"] != "cytometry") | sheet["tube"].isin(["single_stain", "unstained"])
            | sheet["sample_id"].isin(LEAN_TUBES))
    write_sheet(sheet[keep].to_dict("records"), dest / "samplesheet.csv")
    for path in (dest / "cytometry").glob("*.fcs"):
        if path.name not in set(sheet.loc[keep, "file"].map(lambda f: Path(f).name)):
            path.unlink()
    return dest


def _run_batch(batch: Path, results: Path) -> Path:
    """Run the workflow on one batch folder (as `immuno run` does) and return its results."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "immuno", "run", str(batch), "--results", str(results),
                           "--cores", "2"], capture_output=True, text=True, timeout=1800, cwd=batch.parent)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return results


@pytest.fixture(scope="session")
def demo_results(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Results folder of the small demo batch after a full workflow run. Read-only."""
    return _run_batch(small_demo, tmp_path_factory.mktemp("demo_results") / "results")


@pytest.fixture(scope="session")
def one_patient_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Results folder of a one-patient demo batch (`immuno demo OUT --patients 1`). Read-only."""
    from immuno.demo import make_demo_batch

    batch = make_demo_batch(tmp_path_factory.mktemp("one") / "one", seed=11, patients=1, events=4000)
    return _run_batch(batch, tmp_path_factory.mktemp("one_results") / "results")
