"""The study dashboard: written by `immuno study`, self-contained, checked in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from immuno.cli import main
from immuno.study import Study

from .browser import open_page
from .test_store import _batch


def test_dashboard_marks_westgard_violations_and_failing_batches(tmp_path: Path) -> None:
    guide = [10.0, 10.4, 9.6, 10.2, 9.8]
    for i, value in enumerate([*guide, 10.3, 11.5]):
        _batch(tmp_path, f"B{i}", f"2026-0{i + 1}-01T00:00:00+00:00", value,
               {"P01:D0": 20.0 + i, "P01:D10": 15.0, "P01:M1": 12.0} if i == 0 else {})
    assert main(["study", str(tmp_path)]) == 0
    html = (tmp_path / "study" / "dashboard.html").read_text()
    assert "1 of 7 values break a Westgard rule" in html and "<td>1-3s</td>" in html and "<td>reject</td>" in html
    assert "Batches (0 failing)" in html and "cytometry: ics" in html
    assert "D0-&gt;D10" in html  # the statistics table


def test_dashboard_says_why_statistics_are_refused(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0, "P01:D10": 15.0})
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {"P01:D0": 30.0})
    Study(tmp_path).rebuild()
    html = (tmp_path / "study" / "dashboard.html").read_text()
    assert "1 measurement(s) held by more than one batch" in html
    assert "P01 D0 cytometry/ics/Th1: batches B1, B2" in html


@pytest.mark.slow
def test_demo_dashboard_in_chromium(demo_results: Path, tmp_path: Path) -> None:
    dashboard = demo_results / "study" / "dashboard.html"  # written by the workflow's study rule
    assert dashboard.is_file() and dashboard.stat().st_size < 10 * 2**20
    seen = open_page(dashboard, tmp_path / "dashboard.png")
    assert seen.console_errors == [] and seen.outside_requests == [] and seen.broken_images == []
    study = Study(demo_results)
    panels = study.measurements(controls=False).drop_duplicates(["assay", "panel"])
    assert seen.images >= len(panels)  # one trajectory figure per assay panel, plus control charts
    for r in panels.itertuples():
        assert f"{r.assay}: {r.panel}" in seen.text
    assert "reference control" in seen.text and "kit controls" in seen.text
    assert seen.clipped_when_printed == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
