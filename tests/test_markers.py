"""Panel markers against the files' $PnS, and the panel mistakes validation catches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.panels import find_panel, load_panel
from immuno.cytometry import batch_samples, process_unit
from immuno.cytometry.io.fcs import read_fcs, write_fcs
from immuno.cytometry.io.markers import check_markers, informative, pns_matches
from immuno.cytometry.pipeline.panel_checks import panel_problems
from immuno.errors import UserError

PROJECT = Path(__file__).resolve().parents[1]
SURFACE = PROJECT / "panels" / "cytometry_surface_demo.yaml"
ICS = PROJECT / "panels" / "cytometry_ics_demo.yaml"


def _panels(tmp_path: Path, edits: dict[str, dict[str, str]]) -> Path:
    """A copy of the project's panels with text edits (file name -> {old: new})."""
    folder = tmp_path / "panels"
    shutil.copytree(PROJECT / "panels", folder)
    for name, changes in edits.items():
        text = (folder / name).read_text()
        for old, new in changes.items():
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        (folder / name).write_text(text)
    return folder


def test_spellings_and_informative_pns() -> None:
    assert pns_matches("CD3-FITC", ["CD3"]) and pns_matches("IFN-γ BV421", ["IFNg", "IFN-gamma"])
    assert not pns_matches("CD45RA", ["CD4"]) and not pns_matches("CCR4", ["CD4"])
    assert pns_matches("HLA-DR", ["HLADR"])
    # what instruments write when nobody typed a marker
    for pns, channel in (
        ("FL1-A", "FL1-A"),
        ("FITC", "FL1 Log"),
        ("355-448/59", "FL4-Area"),
        ("Alexa Fluor™ 405-A", "VL1-A"),
        ("FS INT LIN", "FS INT LIN"),
        ("V2-A", "V2-A"),
        ("FMO", "FITC-A"),
    ):
        assert not informative(pns, channel), pns
    assert informative("CD41 FITC", "FL1 LOG") and informative("pStat3", "Ax488-A")


def test_check_markers_names_a_swap_and_an_unknown_spelling() -> None:
    panel = [
        {"channel": "BV605-A", "marker": "CD4"},
        {"channel": "PE-Cy7-A", "marker": "CCR4"},
        {"channel": "FITC-A", "marker": "IFNg|IFN-gamma"},
        {"channel": "APC-A", "marker": "IL17A"},
        {"channel": "FSC-A", "marker": None},
    ]
    found = check_markers(
        ["FSC-A", "BV605-A", "PE-Cy7-A", "FITC-A", "APC-A"],
        ["FSC-A", "CCR4 BV605", "CD4", "IFN-γ", None],
        panel,
    )
    assert len(found.mismatches) == 2 and found.unlabelled == ["APC-A"]
    swap = next(m for m in found.mismatches if "BV605-A" in m)
    assert (
        "panel marker CD4" in swap and "'CCR4 BV605'" in swap and "CCR4 (read in PE-Cy7-A)" in swap
    )
    found = check_markers(
        ["FITC-A"], ["IFN gamma (B27)"], [{"channel": "FITC-A", "marker": "IFNg"}]
    )
    assert (
        "add it to the panel" in found.mismatches[0]
        and "IFNg|IFN gamma (B27)" in found.mismatches[0]
    )


def test_swapped_panel_fails_validation_naming_file_channel_and_markers(
    small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CD4 and CCR4 channels swapped, as happens when a panel is copied from another one
    panels = _panels(
        tmp_path,
        {
            "cytometry_surface_demo.yaml": {
                "{channel: BV605-A, marker: CD4, transform: fluor}": "{channel: BV605-A, marker: CCR4, transform: fluor}",
                "{channel: PE-Cy7-A, marker: CCR4, transform: fluor}": "{channel: PE-Cy7-A, marker: CD4, transform: fluor}",
            }
        },
    )
    assert main(["validate", str(small_demo), "--panels", str(panels)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(
        ln for ln in err.splitlines() if "P02-D10-SURF.fcs" in ln and "channel BV605-A" in ln
    )
    assert "panel marker CCR4" in line and "file marker ($PnS) 'CD4'" in line and "swapped" in line
    # the same panel with the right channels validates
    assert main(["validate", str(small_demo)]) == 0


def test_a_file_without_pns_is_gated_with_a_warning(demo_copy: Path) -> None:
    for sid in ("P01-D0-ICS-STIM", "P01-D0-ICS-UNSTIM"):
        path = demo_copy / "cytometry" / f"{sid}.fcs"
        f = read_fcs(path, preprocess=False)
        keep = {k: v for k, v in f.keywords.items() if k in ("$SPILLOVER", "$TIMESTEP")}
        write_fcs(path, f.events, f.channels, [None] * f.n_channels, keep, ranges=f.ranges)
    batch = load_batch(demo_copy)
    (unit,) = [i for i in batch_samples(batch, units=True) if i.sample_id == "P01-D0-ICS-STIM"]
    stim, control = process_unit(unit)
    assert stim.ok and control.ok
    flags = pd.DataFrame(stim.flags)
    unchecked = flags[flags["flag"] == "markers_unchecked"]
    assert len(unchecked) == 1 and unchecked["severity"].iloc[0] == "warning"
    assert "BUV395-A" in unchecked["reason"].iloc[0] and "IFNG_CD4" in {
        m["feature"] for m in stim.measurements
    }


def test_a_wrong_marker_fails_its_sample_only(demo_copy: Path) -> None:
    path = demo_copy / "cytometry" / "P01-D10-SURF.fcs"
    f = read_fcs(path, preprocess=False)
    markers = ["CD8" if m == "CD4" else m for m in f.markers]
    write_fcs(
        path,
        f.events,
        f.channels,
        markers,
        {"$SPILLOVER": f.keywords["$SPILLOVER"]},
        ranges=f.ranges,
    )
    batch = load_batch(demo_copy)
    with pytest.raises(UserError) as err:
        from immuno.contract.validate import validate_batch

        validate_batch(demo_copy)
    assert any(
        "P01-D10-SURF.fcs" in str(p) and "channel BV605-A" in str(p) for p in err.value.problems
    )
    (info,) = batch_samples(batch, ["P01-D10-SURF"])
    (outcome,) = process_unit(info, None)
    assert not outcome.ok
    reason = outcome.flags[0]["reason"]
    assert "P01-D10-SURF.fcs" in reason and "panel marker CD4" in reason and "'CD8'" in reason


def _write_panel(tmp_path: Path, source: Path, changes: dict[str, str]) -> Path:
    text = source.read_text()
    for old, new in changes.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    out = tmp_path / source.name
    out.write_text(text)
    return out


def test_windows_defaults_and_spellings_are_checked_with_their_line(tmp_path: Path) -> None:
    path = _write_panel(
        tmp_path,
        SURFACE,
        {
            "{dim: CD45RA, keep: below, method: density_valley, window: [0.3, 0.52], default: 0.42}": "{dim: CD45RA, keep: below, method: density_valley, window: [0.52, 0.3], default: 0.42}",
            "{dim: CXCR3, keep: above, method: density_valley, window: [0.3, 0.48], default: 0.4}": "{dim: CXCR3, keep: above, method: density_valley, window: [0.3, 0.48], default: 0.6}",
            "{channel: BV421-A, marker: CXCR3, transform: fluor}": '{channel: BV421-A, marker: "CXCR3||CD183", transform: fluor}',
            "{channel: PE-Cy7-A, marker: CCR4, transform: fluor}": '{channel: PE-Cy7-A, marker: "CCR4|CD4", transform: fluor}',
        },
    )
    lines = path.read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, ln in enumerate(lines, 1) if fragment in ln)

    problems = [str(p) for p in panel_problems(load_panel(path))]
    expected = [
        (line_of("window: [0.52, 0.3]"), "reversed"),
        (line_of("default: 0.6}"), "outside its window"),
        (line_of("CXCR3||CD183"), "empty name"),
        (line_of('"CCR4|CD4"'), "also a name of marker 'CD4'"),
    ]
    for line, what in expected:
        assert any(f"line {line}:" in p and what in p for p in problems), (line, what, problems)
    assert len(problems) == 4


def test_yaml_syntax_errors_have_line_and_column_even_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "panels"
    folder.mkdir()
    text = ICS.read_text().replace("tube: ics\n", "tube: ics\nqc: {time_channel: Time\n")
    (folder / "cytometry_ics_demo.yaml").write_text(text)
    with pytest.raises(UserError) as err:
        find_panel("cytometry_ics_demo", folder)
    (problem,) = err.value.problems
    assert (
        "line" in problem.where and "column" in problem.where and "not valid YAML" in problem.what
    )
    assert "no panel" not in problem.what


def test_a_file_with_several_data_sets_needs_the_panel_to_choose(tmp_path: Path) -> None:
    from immuno.cytometry.pipeline.ingest import ingest_sample

    one = write_fcs(
        tmp_path / "a.fcs", np.ones((300, 2), np.float32), ["FSC-A", "FL1-A"], [None, "CD3"]
    )
    two = write_fcs(
        tmp_path / "b.fcs", np.full((200, 2), 2.0, np.float32), ["FSC-A", "FL1-A"], [None, "CD3"]
    )
    # chain them: the first data set's $NEXTDATA points to the second's HEADER (the same
    # number of bytes replaces $BEGINANALYSIS, so every other offset stays valid)
    a, b = one.read_bytes(), two.read_bytes()
    field = b"$BEGINANALYSIS/0/"
    assert a.count(field) == 1
    merged = a.replace(field, b"$NEXTDATA/" + f"{len(a):06d}".encode() + b"/") + b
    panel_text = (
        "name: two\nassay: cytometry\nversion: 1\ncompensation: {source: none}\nqc: {margin: false}\n"
        "channels:\n  - {channel: FSC-A, marker: null, transform: null}\n"
        "  - {channel: FL1-A, marker: CD3, transform: null}\ntransforms: {}\n"
    )
    (tmp_path / "p.yaml").write_text(panel_text)
    (tmp_path / "both.fcs").write_bytes(merged)
    with pytest.raises(UserError, match="2 data sets"):
        ingest_sample(tmp_path / "both.fcs", load_panel(tmp_path / "p.yaml"))
    (tmp_path / "p.yaml").write_text(panel_text + "dataset: 2\n")
    adata = ingest_sample(tmp_path / "both.fcs", load_panel(tmp_path / "p.yaml"))
    assert adata.n_obs == 200 and float(adata.layers["raw"][0, 0]) == 2.0
    assert adata.uns["provenance"]["fcs_dataset"] == 2


def test_the_documented_worked_example_is_a_valid_panel(tmp_path: Path) -> None:
    text = (PROJECT / "docs" / "cytometry.md").read_text()
    start = text.index("```yaml\nname: treg_fortessa")
    block = text[start + len("```yaml\n") : text.index("```", start + 8)]
    (tmp_path / "treg_fortessa.yaml").write_text(block)
    panel = find_panel("treg_fortessa", tmp_path)
    assert panel_problems(panel) == []
    assert panel.get("channels")[5]["marker"] == "CD4|CD4 FITC"
