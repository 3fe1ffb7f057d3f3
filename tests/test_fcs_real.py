"""Every real FCS file of ../shared/data/real: read as flowio and FlowKit read it, or refused
in one line; ``inspect`` and ``ingest`` never end in a traceback.

The reference for channels and event counts is flowio; for values, FlowKit's raw events
(flowio decoding, FlowKit preprocessing). Where those refuse a file that is nevertheless
readable (HEADER and TEXT offsets that disagree, several data sets), they are given the
options that read it the way this reader decided to (and recorded in its notes). Where
they cannot read the values at all (24-bit and word-stored 10-bit integers), an
independent known answer is used.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from immuno.cli import main
from immuno.cytometry.io.fcs import list_datasets, read_fcs, read_fcs_header
from immuno.cytometry.io.inspect_fcs import starter_channels
from immuno.cytometry.io.spill_keywords import keyword_matrices
from immuno.errors import UserError

from .conftest import REAL

flowio = pytest.importorskip("flowio")
flowkit = pytest.importorskip("flowkit")

CYTO = REAL / "cytometry"
FILES = sorted((CYTO / "fcs").glob("*")) + sorted((CYTO / "workspaces").glob("*.fcs")) + [
    CYTO / "flowkit_gate_ref" / "data1.fcs", REAL / "chemokines" / "legendplex" / "K2-C07-A7.fcs"]
#: flowio reads their TEXT but returns no values (widths it does not decode)
NO_FLOWIO_VALUES = {("FlowCal_Data003_Cytek_xP3_24bit.fcs", 1), ("cytoflow_BeckmanCoulter_CytomicsFC500.LMD", 1)}
#: FlowKit cannot preprocess them ($TIMESTEP is 'xxxxxxxxx' in these anonymised files)
BAD_TIMESTEP = {"FlowIO_data_start_offset_discrepancy_example.fcs", "FlowIO_data_stop_offset_discrepancy_example.fcs",
                "FlowIO_variable_int_example.fcs"}


def _cases() -> list[tuple[Path, int, int]]:
    if not CYTO.is_dir():
        return []
    return [(f, ds.index, len(list_datasets(f))) for f in FILES for ds in list_datasets(f)]


CASES = _cases()


def _flowio_sets(path: Path, use_header: bool) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flowio.read_multiple_data_sets(str(path), ignore_offset_error=True, ignore_offset_discrepancy=True,
                                              use_header_offsets=use_header)


@pytest.mark.real
@pytest.mark.parametrize("path, dataset, n_sets", CASES, ids=[f"{p.name}#{d}" for p, d, _ in CASES])
def test_real_file_read_in_blocks_equals_the_whole(real_data: Path, path: Path, dataset: int, n_sets: int) -> None:
    """The pipeline reads a tube block by block (never the whole file at once): the blocks,
    stacked, are exactly the events read whole, for every layout real instruments write."""
    from immuno.cytometry.io.fcs import EventReader

    chosen = dataset if n_sets > 1 else None
    for dtype in (np.float32, np.float64):
        whole = read_fcs(path, dtype=dtype, dataset=chosen).events
        reader = EventReader(path, dtype=dtype, dataset=chosen)
        blocks = list(reader.blocks(rows=997))
        assert [start for start, _ in blocks] == list(range(0, reader.n_events, 997))
        stacked = np.concatenate([b for _, b in blocks]) if blocks else np.zeros((0, len(reader.fcs.channels)))
        assert stacked.dtype == whole.dtype
        np.testing.assert_array_equal(stacked, whole)


@pytest.mark.real
@pytest.mark.parametrize("path, dataset, n_sets", CASES, ids=[f"{p.name}#{d}" for p, d, _ in CASES])
def test_real_file_reads_like_flowio_and_flowkit(real_data: Path, path: Path, dataset: int, n_sets: int) -> None:
    ours = read_fcs(path, dtype=np.float64, dataset=dataset if n_sets > 1 else None)
    use_header = any("used HEADER" in n for n in ours.notes)
    sets = _flowio_sets(path, use_header)
    assert len(sets) == n_sets
    ref = sets[dataset - 1]
    assert ours.channels == list(ref.pnn_labels)
    assert ours.n_events == ref.event_count
    assert ours.n_datasets == n_sets and ours.dataset == dataset
    if (path.name, dataset) in NO_FLOWIO_VALUES:
        assert ref.events is None
        return
    if path.name in BAD_TIMESTEP:
        # FlowKit refuses the file; the stored values equal flowio's, and the reader says
        # why Time stays in ticks
        stored = read_fcs(path, dtype=np.float64, preprocess=False)
        np.testing.assert_array_equal(stored.events, ref.as_array(preprocess=False))
        assert any("$TIMESTEP" in n for n in ours.notes)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = flowkit.Sample(ref, ignore_offset_error=True)
    expected = sample.get_events(source="raw")
    # in float64 the arithmetic is FlowKit's, bit for bit; the default float32 events are
    # the same numbers to float32 precision (gain and log decoding rounded once more)
    np.testing.assert_array_equal(ours.events, expected)
    np.testing.assert_allclose(read_fcs(path, dataset=dataset if n_sets > 1 else None).events, expected,
                               rtol=float(np.finfo(np.float32).eps), atol=0)
    assert [m or "" for m in ours.markers] == [s.strip() for s in sample.pns_labels]


@pytest.mark.real
def test_offset_disagreements_are_resolved_and_noted(real_data: Path) -> None:
    fcs = CYTO / "fcs"
    # Accuri C6: TEXT's $BEGINDATA points inside the TEXT segment; CyAn: both fit, the
    # HEADER's starts right after TEXT (its Time MSW word then rises steadily)
    for name, used in (("cytoflow_Accuri_C6.fcs", "HEADER"), ("cytoflow_BeckmanCoulter_Cyan.fcs", "HEADER"),
                       ("FlowIO_data_start_offset_discrepancy_example.fcs", "TEXT"),
                       ("FlowIO_data_stop_offset_discrepancy_example.fcs", "TEXT")):
        notes = read_fcs_header(fcs / name).notes
        assert any(f"used {used}'s" in n for n in notes), (name, notes)
    cyan = read_fcs(fcs / "cytoflow_BeckmanCoulter_Cyan.fcs", preprocess=False)
    msw = cyan.events[:, cyan.channels.index("Time MSW")]
    assert np.all(np.diff(msw) >= 0) and msw.max() <= 18


@pytest.mark.real
def test_word_stored_and_24_bit_integers_have_known_answers(real_data: Path) -> None:
    fc500 = CYTO / "fcs" / "cytoflow_BeckmanCoulter_CytomicsFC500.LMD"
    ten_bit = read_fcs(fc500, dataset=1, preprocess=False)
    full = read_fcs(fc500, dataset=2, preprocess=False)
    assert any("16-bit" in n or "[2]-byte" in n for n in ten_bit.notes)
    # data set 1 holds the same events at 10-bit resolution: FS and SS are the 20-bit
    # values of data set 2 shifted right by 10 bits, exactly
    for ours, other in (("FS Lin", "FS"), ("SS Lin", "SS")):
        a = ten_bit.events[:, ten_bit.channels.index(ours)]
        b = full.events[:, full.channels.index(other)]
        np.testing.assert_array_equal(a, np.floor(b / 1024))
    xp3 = read_fcs(CYTO / "fcs" / "FlowCal_Data003_Cytek_xP3_24bit.fcs", preprocess=False)
    assert xp3.events.shape == (25000, 8)
    assert (xp3.events < xp3.ranges).all()  # big-endian 3-byte words decode inside $PnR
    assert np.all(np.diff(xp3.events[:, xp3.channels.index("TIME")]) >= 0)


@pytest.mark.real
def test_several_data_sets_need_a_choice(real_data: Path) -> None:
    path = CYTO / "fcs" / "cytoflow_BeckmanCoulter_Gallios.LMD"
    for reader in (read_fcs, read_fcs_header):
        with pytest.raises(UserError) as err:
            reader(path)
        (problem,) = err.value.problems
        assert str(path) in problem.where
        assert "2 data sets" in problem.what and "FS INT LIN" in problem.what and "FS-A" in problem.what
        assert "dataset=N" in problem.what
    with pytest.raises(UserError, match="no data set 3"):
        read_fcs(path, dataset=3)


@pytest.mark.real
def test_compensation_keywords_of_every_generation(real_data: Path) -> None:
    fcs = CYTO / "fcs"
    accuri = dict(keyword_matrices(read_fcs_header(fcs / "cytoflow_Accuri_C6.fcs")))
    # parameter numbers in $SPILLOVER are mapped to $PnN
    assert accuri["$SPILLOVER"].channels[:4] == ("FL1-A", "FL2-A", "FL3-A", "FL4-A")
    system2 = dict(keyword_matrices(read_fcs_header(fcs / "cytoflow_SystemII_extra_bits_D10-D15.LMD")))
    dfc = system2["$DFCiTOj"]
    assert dfc.channels == ("FL1 LOG", "FL2 LOG", "FL3 LOG", "FL4 LOG")
    assert dfc.matrix[0, 1] == pytest.approx(0.051) and dfc.matrix[2, 3] == pytest.approx(0.511)
    gallios = dict(keyword_matrices(read_fcs_header(fcs / "cytoflow_BeckmanCoulter_Gallios.LMD", dataset=2)))
    assert gallios["$COMP"].channels == ("FS-A", "SS-A", "FL1-A", "FL2-A")  # Time's all-zero row left out
    ambiguous = dict(keyword_matrices(read_fcs_header(fcs / "cytoflow_BeckmanCoulter_Gallios.LMD", dataset=1)))
    assert isinstance(ambiguous["$DFCiTOj"], UserError)
    assert "FL1 INT LOG, FL1 INT LIN" in ambiguous["$DFCiTOj"].problems[0].what


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.mark.real
def test_inspect_and_ingest_every_real_file(real_data: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A starter panel from ``inspect --yaml`` ingests every data set of every file."""
    panels = tmp_path / "panels"
    panels.mkdir()
    for k, (path, dataset, n_sets) in enumerate(CASES):
        rc, out, _ = _run(capsys, ["cytometry", "inspect", str(path)])
        assert rc == 0 and "$PnN" in out
        choose = ["--dataset", str(dataset)] if n_sets > 1 else []
        rc, yaml_text, _ = _run(capsys, ["cytometry", "inspect", str(path), "--yaml", *choose])
        assert rc == 0
        header = read_fcs_header(path, dataset=dataset)
        found = keyword_matrices(header)
        source = "keyword" if found and not isinstance(found[0][1], UserError) else "none"
        extra = f"dataset: {dataset}\n" if n_sets > 1 else ""
        (panels / f"p{k}.yaml").write_text(f"name: p{k}\nassay: cytometry\nversion: 1\n{extra}"
                                           f"compensation: {{source: {source}}}\n{yaml_text}")
        rc, out, err = _run(capsys, ["cytometry", "ingest", str(path), "--panel", f"p{k}", "--panels", str(panels),
                                     "--out", str(tmp_path / f"p{k}.h5ad")])
        assert rc == 0, err
        assert f"{header.n_events} events x {header.n_channels} channels" in out
    # a file with several data sets and no choice: one line naming the file and its data sets
    gallios = CYTO / "fcs" / "cytoflow_BeckmanCoulter_Gallios.LMD"
    rc, _, err = _run(capsys, ["cytometry", "inspect", str(gallios), "--yaml"])
    assert rc == 2 and str(gallios) in err
    rc, _, err = _run(capsys, ["cytometry", "ingest", str(gallios), "--panel", "p0", "--panels", str(panels),
                               "--out", str(tmp_path / "x.h5ad")])
    assert rc == 2 and "2 data sets" in err and str(gallios) in err


def test_starter_panel_guesses_markers_from_pns(tmp_path: Path) -> None:
    from immuno.cytometry.io.fcs import write_fcs

    path = write_fcs(tmp_path / "x.fcs", np.zeros((3, 5), np.float32), ["FSC-A", "FL1-A", "FL2-A", "FL3-A", "Time"],
                     ["FSC-A", "CD3-FITC", "FL2-A", None, None])
    text = starter_channels(read_fcs_header(path))
    assert "{channel: FSC-A, marker: null, transform: scatter}" in text
    assert "{channel: FL1-A, marker: CD3, transform: fluor}" in text
    assert "{channel: FL2-A, marker: null, transform: fluor}  # fill in the marker" in text
    assert "{channel: Time, marker: null, transform: null}" in text


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b[:2000], "truncated"),
    (lambda b: b"FCS3.1    " + b"x" * 48 + b[58:], "HEADER offsets are not numbers"),
    (lambda b: b[:58] + b"\x00" * (len(b) - 58), "required keyword $PAR is missing"),
])
def test_damaged_files_fail_in_one_line_on_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         damage: object, expected: str) -> None:
    from immuno.cytometry.io.fcs import write_fcs

    good = write_fcs(tmp_path / "good.fcs", np.ones((500, 3), np.float32), ["FSC-A", "FL1-A", "Time"],
                     [None, "CD3", None])
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(damage(good.read_bytes()))  # type: ignore[operator]
    for argv in (["cytometry", "inspect", str(bad)], ["cytometry", "inspect", str(bad), "--yaml"],
                 ["cytometry", "apply-template", str(tmp_path / "none.wsp")]):
        rc, _, err = _run(capsys, argv)
        assert rc == 2
    rc, _, err = _run(capsys, ["cytometry", "inspect", str(bad)])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and expected in lines[0]


def test_light_entry_points_import_no_heavy_library() -> None:
    """Start-up: ``import immuno.cytometry`` and reading a header pay for numpy only; AnnData,
    pandas, numba, FlowKit and matplotlib are imported when a sample is gated or plotted."""
    import subprocess
    import sys

    heavy = ("anndata", "pandas", "numba", "flowkit", "matplotlib", "scanpy")
    code = ("import sys, immuno.cytometry as c; c.read_fcs_header; from immuno.cytometry.io.inspect_fcs import "
            f"describe_fcs; print(','.join(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
