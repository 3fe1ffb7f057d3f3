"""The example notebook and the notebooks page's examples (docs/notebooks.md), executed on demo results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import PROJECT

NOTEBOOK = PROJECT / "examples" / "study_walkthrough.ipynb"


@pytest.mark.slow
def test_example_notebook_runs_on_the_demo(
    demo_results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    monkeypatch.setenv("IMMUNO_RESULTS", str(demo_results))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(PROJECT)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # trajectories, PCA, UMAP, control chart
    text = "".join(
        str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs
    )
    assert "D0->D10" in text and "AnnData object" in text and "X_pca" in text


@pytest.mark.slow
def test_documented_notebook_examples_run_on_the_demo(
    demo_results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (PROJECT / "docs" / "notebooks.md").read_text()
    section = page.split("## A first session", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the notebooks page's first session has a python example"
    monkeypatch.chdir(demo_results.parent)  # the examples open Study("results")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/notebooks.md", "exec"), namespace)  # noqa: S102 - the page's own examples
    assert namespace["adata"].n_obs > 0 and not namespace["adata"].obs.control.any()
