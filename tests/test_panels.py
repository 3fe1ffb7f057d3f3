"""Panel loading: every mistake reported with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from immuno.contract.panels import load_panel, panel_index
from immuno.errors import UserError

PANELS = Path(__file__).resolve().parents[1] / "panels"


def test_every_project_panel_loads() -> None:
    index = panel_index(PANELS)
    assert {"cytometry", "chemokine", "chimerism"} <= {load_panel(p).assay for p in index.values()}
    for name, path in index.items():
        panel = load_panel(path)
        assert panel.name == name
        assert len(panel.sha256) == 64


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "panel.yaml"
    path.write_text(text)
    return path


def test_unknown_assay_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nversion: 1\nassay: cytometyr\n")
    with pytest.raises(UserError) as err:
        load_panel(path)
    (problem,) = err.value.problems
    assert "line 3" in problem.where and "cytometyr" in problem.what


def test_unknown_top_level_key_is_reported_with_its_line(tmp_path: Path) -> None:
    good = next(p for p in panel_index(PANELS).values() if load_panel(p).assay == "chemokine")
    text = good.read_text() + "\nanalyts: []\n"
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_panel(path)
    lines = text.splitlines()
    expected_line = lines.index("analyts: []") + 1
    assert any(f"line {expected_line}" in p.where and "analyts" in p.where for p in err.value.problems)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nassay: chimerism\nversion: [1\n")
    with pytest.raises(UserError) as err:
        load_panel(path)
    assert "line" in err.value.problems[0].where
    assert "YAML" in err.value.problems[0].what


def test_missing_header_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "assay: chimerism\n")
    with pytest.raises(UserError) as err:
        load_panel(path)
    whats = " ".join(p.what for p in err.value.problems)
    assert "'name'" in whats and "'version'" in whats


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: !!python/object/apply:os.system ['echo hacked']\nassay: chimerism\nversion: 1\n")
    with pytest.raises(UserError):
        load_panel(path)
