"""Reruns are decided by content: each kind of input edited with its time kept.

One lean batch (see conftest) with a private copy of the panels is run once; then, one
after the other, an FCS file, the chemokine plate, an NGS genotyping file, a panel YAML
and the sample sheet are edited with their modification time put back, and the same
``immuno run`` must rerun exactly the jobs that read the edited file (and the merge,
report and study tables after them) and change the results that depend on it. The last
test replays the interrupted-run window that used to leave results stale: the step had
finished but Snakemake had not recorded it (no metadata), so the job's hash parameters
were never compared again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from immuno.io import sha256_file

pytestmark = pytest.mark.slow

#: the demo's xPONENT export (the chemokine folder also holds the LEGENDplex plate and layouts)
XPONENT_PLATE = "CHEMO_PLATE_01.csv"
#: jobs that rerun after any change of a batch's results
DOWNSTREAM = {"collect_batch": 1, "report_batch": 1, "study_tables": 1, "all": 1}


def run(batch: Path, results: Path, panels: Path) -> tuple[subprocess.CompletedProcess[str], Counter[str]]:
    """``immuno run`` on the batch; the jobs Snakemake ran, counted by rule."""
    done = subprocess.run([sys.executable, "-m", "immuno", "run", str(batch), "--results", str(results),
                           "--panels", str(panels), "--cores", "2"],
                          capture_output=True, text=True, timeout=1200, cwd=results.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = Counter(line.split()[-1].rstrip(":") for line in (done.stdout + done.stderr).splitlines()
                  if line.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")))
    return done, ran


def edit_keeping_time(path: Path, edit) -> None:
    """Rewrite ``path`` through ``edit(bytes) -> bytes`` and put its times back."""
    stat = path.stat()
    before = path.read_bytes()
    after = edit(before)
    assert after != before and len(after) == len(before)  # same size, same time: only content says
    path.write_bytes(after)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def values(results: Path, batch: str, sample: str) -> pd.Series:
    """The measurement values of one sample, by feature."""
    m = pd.read_parquet(results / batch / "measurements.parquet")
    rows = m[m["sample_id"] == sample]
    assert len(rows), sample
    return rows.set_index(["panel", "feature"])["value"].sort_index()


def recorded_hash(results: Path, batch: str, name: str) -> str:
    return json.loads((results / batch / "provenance.json").read_text())["inputs"][name]["sha256"]


@pytest.fixture(scope="module")
def setup(lean_batch: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    space = tmp_path_factory.mktemp("reruns")
    batch = space / "batch"
    shutil.copytree(lean_batch, batch)
    panels = space / "panels"
    shutil.copytree(Path(__file__).resolve().parents[1] / "panels", panels)
    results = space / "results"
    results.mkdir()
    _, first = run(batch, results, panels)
    assert first["chemokines_batch"] == 1 and first["validate_batch"] == 1
    return {"batch": batch, "panels": panels, "results": results, "id": batch.name}


def test_an_unchanged_batch_reruns_nothing(setup: dict) -> None:
    _, ran = run(setup["batch"], setup["results"], setup["panels"])
    assert ran == Counter()


def test_an_fcs_file_reruns_its_patients_job_only(setup: dict) -> None:
    batch, results = setup["batch"], setup["results"]
    fcs = batch / "cytometry" / "P02-D0-SURF.fcs"
    events = results / setup["id"] / "cytometry" / "events" / "P02-D0-SURF.h5ad"
    other = results / setup["id"] / "cytometry" / "events" / "P01-D0-SURF.h5ad"
    before, other_before = sha256_file(events), sha256_file(other)

    def flip(data: bytes) -> bytes:
        out = bytearray(data)
        out[-100] ^= 0x01  # one bit of one event
        return bytes(out)

    edit_keeping_time(fcs, flip)
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter({"cytometry_patient": 1, "cytometry_batch": 1, **DOWNSTREAM})
    assert sha256_file(events) != before and sha256_file(other) == other_before
    assert recorded_hash(results, setup["id"], "cytometry/P02-D0-SURF.fcs") == sha256_file(fcs)


def _first_digit_changed(line: bytes, field: int) -> bytes:
    """A CSV line with the first digit of one field changed (9 -> 8, else +1)."""
    cells = line.split(b",")
    i = next(i for i, c in enumerate(cells[field]) if chr(c).isdigit())
    digit = cells[field][i] - ord("0")
    cells[field] = cells[field][:i] + str(8 if digit == 9 else digit + 1).encode() + cells[field][i + 1:]
    return b",".join(cells)


def edit_one_mfi(data: bytes, sample: str) -> bytes:
    """An xPONENT export where one analyte of the sample (CCL17, within the standards' range
    in the demo) reads otherwise in the median and net MFI blocks: its first digit changed,
    the same length, another value."""
    lines, block = data.split(b"\n"), b""
    header = next(ln for ln in lines if ln.startswith(b'"Location","Sample"'))
    assert header.split(b",")[5] == b'"CCL17/TARC"'
    tag = f'"{sample}",'.encode()
    for n, line in enumerate(lines):
        if line.startswith(b'"DataType:"'):
            block = line
        elif tag in line and (b'"Median"' in block or b'"Net MFI"' in block):
            lines[n] = _first_digit_changed(line, 5)
    return b"\n".join(lines)


def test_the_chemokine_plate_reruns_the_chemokine_job_only(setup: dict) -> None:
    batch, results = setup["batch"], setup["results"]
    plate = batch / "chemokine" / XPONENT_PLATE
    sample = "P01-D0-PLASMA"
    before = values(results, setup["id"], sample)
    cytometry = values(results, setup["id"], "P01-D0-SURF")

    edit_keeping_time(plate, lambda data: edit_one_mfi(data, sample))
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter({"chemokines_batch": 1, **DOWNSTREAM})
    after = values(results, setup["id"], sample)
    assert not after.equals(before)
    pd.testing.assert_series_equal(values(results, setup["id"], "P01-D0-SURF"), cytometry)
    assert recorded_hash(results, setup["id"], f"chemokine/{plate.name}") == sha256_file(plate)


def test_a_genotyping_file_reruns_the_chimerism_job_only(setup: dict) -> None:
    batch, results = setup["batch"], setup["results"]
    counts = batch / "chimerism" / "P01-M1-BX-NGS.tsv"
    sample = "P01-M1-BX-NGS"
    m = pd.read_parquet(results / setup["id"] / "measurements.parquet")
    assert sample in set(m["sample_id"])
    before = values(results, setup["id"], sample)

    def move_reads(data: bytes) -> bytes:
        # ten reads from the reference to the alternative allele (same depth) at the marker
        # with the least alternative reads: where the donor's allele is the minor one
        lines = data.split(b"\n")
        rows = [(int(f[3]) / int(f[1]), n) for n, f in enumerate(ln.split(b"\t") for ln in lines)
                if len(f) >= 4 and f[1].isdigit() and int(f[3] or 0) > 0 and int(f[2]) >= 20]
        for _, n in sorted(rows):
            f = lines[n].split(b"\t")
            ref, alt = int(f[2]) - 10, int(f[3]) + 10
            if len(str(ref)) == len(f[2]) and len(str(alt)) == len(f[3]):
                f[2], f[3] = str(ref).encode(), str(alt).encode()
                lines[n] = b"\t".join(f)
                return b"\n".join(lines)
        raise AssertionError("no marker to edit")

    edit_keeping_time(counts, move_reads)
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter({"chimerism_batch": 1, **DOWNSTREAM})
    assert not values(results, setup["id"], sample).equals(before)


def test_a_panel_reruns_the_jobs_of_its_samples_only(setup: dict) -> None:
    batch, results = setup["batch"], setup["results"]
    panel = setup["panels"] / "chemokine_demo.yaml"
    before = values(results, setup["id"], "P02-M1-PLASMA")
    edit_keeping_time(panel, lambda data: data.replace(b"model: 5PL", b"model: 4PL"))
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter({"chemokines_batch": 1, **DOWNSTREAM})
    assert not values(results, setup["id"], "P02-M1-PLASMA").equals(before)


def test_the_sample_sheet_reruns_every_job_that_reads_it(setup: dict) -> None:
    batch, results = setup["batch"], setup["results"]
    sheet = batch / "samplesheet.csv"
    rows = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    gated = rows[(rows["assay"] == "cytometry") & ~rows["tube"].isin(["single_stain", "unstained"])]
    patients = gated["patient_id"].nunique()  # one cytometry job per patient's gated tubes
    # the two last lines swapped: the same samples, another file
    edit_keeping_time(sheet, lambda data: b"\n".join([*data.rstrip(b"\n").split(b"\n")[:-2],
                                                      *data.rstrip(b"\n").split(b"\n")[-2:][::-1]]) + b"\n")
    _, ran = run(batch, results, setup["panels"])
    # every job reads the sheet (each step checks it), so every job reruns
    assert ran == Counter({"validate_batch": 1, "cytometry_compensation": 1, "cytometry_patient": patients,
                           "cytometry_controls": 1, "cytometry_batch": 1, "chemokines_batch": 1,
                           "chimerism_batch": 1, **DOWNSTREAM})
    assert recorded_hash(results, setup["id"], "samplesheet.csv") == sha256_file(sheet)


def test_a_finished_step_that_snakemake_never_recorded_still_reruns_when_its_input_changes(
        setup: dict) -> None:
    """The race behind a stale rerun: a run killed after a step finished but before Snakemake
    wrote its metadata record. Without a record Snakemake compares no parameters, and a job
    behind the validation checkpoint escapes its "incomplete" check too; the content stamps
    are inputs, so their time alone reruns the job."""
    batch, results = setup["batch"], setup["results"]
    metadata = results / ".snakemake" / "metadata"
    assert metadata.is_dir() and any(metadata.iterdir())
    shutil.rmtree(metadata)  # every finished step, unrecorded (as after a kill in that window)
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter()  # complete outputs: nothing to redo
    plate = batch / "chemokine" / XPONENT_PLATE
    edit_keeping_time(plate, lambda data: edit_one_mfi(data, "P02-D0-PLASMA"))
    _, ran = run(batch, results, setup["panels"])
    assert ran == Counter({"chemokines_batch": 1, **DOWNSTREAM})
    assert recorded_hash(results, setup["id"], f"chemokine/{plate.name}") == sha256_file(plate)
