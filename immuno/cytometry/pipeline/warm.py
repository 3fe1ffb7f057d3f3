"""Compile the room's kernels once per environment, before any batch needs them.

The compiled loops (compensation, transforms, acquisition QC, gate tests, order
statistics) are compiled by numba on first use and cached on disk beside their modules,
per argument types. A workflow that starts many sample jobs at once on a fresh
installation would otherwise compile them in every job at the same time (tens of
seconds each). :func:`warm` processes a small synthetic ICS pair through the whole
per-tube pipeline, with every kind of gate a panel can place, plus the static gating
path, in a temporary folder: afterwards every job only loads the cache. Running it again
costs what loading costs (a fraction of a second).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from immuno.contract.panels import load_panel
from immuno.cytometry.analysis import order_stats
from immuno.cytometry.engine.event_pass import gate_events
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.engine.gates import RectangleGate
from immuno.cytometry.io.fcs import read_fcs
from immuno.cytometry.io.fcs_write import format_spillover, write_fcs
from immuno.cytometry.io.spillover import spillover_from_keywords
from immuno.cytometry.pipeline.batch import run_unit
from immuno.cytometry.pipeline.tubes import SampleInfo

__all__ = ["warm"]

_CHANNELS = ["FSC-A", "FSC-H", "SSC-A", "SSC-H", "Time", "CD3-A", "CD4-A", "CD8-A", "IFNG-A"]
_MARKERS = [None, None, None, None, None, "CD3", "CD4", "CD8", "IFNg"]

_PANEL = """\
name: warm_up
assay: cytometry
version: 1
channels:
  - {channel: FSC-A, marker: null, transform: scatter}
  - {channel: FSC-H, marker: null, transform: scatter}
  - {channel: SSC-A, marker: null, transform: scatter}
  - {channel: SSC-H, marker: null, transform: scatter}
  - {channel: Time, marker: null, transform: null}
  - {channel: CD3-A, marker: CD3, transform: fluor}
  - {channel: CD4-A, marker: CD4, transform: fluor}
  - {channel: CD8-A, marker: CD8, transform: fluor}
  - {channel: IFNG-A, marker: IFNg, transform: fluor}
transforms:
  scatter: {type: linear, t: 262144, a: 0}
  fluor: {type: logicle, t: 262144, w: 0.5, m: 4.5, a: 0}
compensation: {source: keyword}
qc: {time_channel: Time, bin_events: 100}
gates:
  - {id: cells, type: gmm, dims: [FSC-A, SSC-A], expected: [0.3, 0.1], components: 2,
     default: {type: rectangle, dims: [FSC-A, SSC-A], min: [0.05, 0.0], max: [0.9, 0.9]}}
  - {id: singlets, parent: cells, type: singlet, dims: [FSC-A, FSC-H], default: [0.7, 1.0]}
  - {id: box, parent: singlets, type: rectangle, dims: [CD3, CD8], min: [0.0, 0.0], max: [1.0, 1.0]}
  - {id: poly, parent: box, type: polygon, dims: [CD3, CD8],
     vertices: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
  - {id: oval, parent: poly, type: ellipse, dims: [CD3, CD8], mean: [0.5, 0.5],
     covariance: [[0.1, 0.0], [0.0, 0.1]], distance_square: 9.0}
  - id: CD3
    parent: oval
    type: threshold
    thresholds:
      - {dim: CD3, keep: above, method: density_valley, window: [0.2, 0.6], default: 0.4}
  - id: T
    parent: CD3
    type: quadrant
    dims: [CD4, CD8]
    dividers:
      - {method: density_valley, window: [0.2, 0.6], default: 0.4}
      - {method: fixed, at: 0.4}
    quadrants: {CD4pos: [+, "-"], CD8pos: ["-", +], DN: ["-", "-"], DP: [+, +]}
  - id: IFNg
    parent: CD4pos
    type: threshold
    thresholds:
      - {dim: IFNg, keep: above, method: control_percentile, percentile: 99.9, default: 0.5}
populations:
  IFNG_CD4: {expr: "CD4pos & IFNg", parent: CD4pos}
headline:
  IFNG_CD4: {population: IFNG_CD4, of: CD4pos, unit: "% of CD4+", subtract_control: true}
"""


def _write_tube(path: Path, rng: np.random.Generator, n: int) -> None:
    events = np.empty((n, len(_CHANNELS)), dtype=np.float32)
    events[:, 0] = rng.normal(80000, 15000, n)
    events[:, 1] = events[:, 0] * rng.normal(0.85, 0.02, n)
    events[:, 2] = rng.normal(25000, 6000, n)
    events[:, 3] = events[:, 2] * 0.9
    events[:, 4] = np.sort(rng.uniform(0, 60, n))
    bright = rng.random((n, 4)) < 0.5
    events[:, 5:] = np.where(bright, rng.normal(20000, 4000, (n, 4)), rng.normal(0, 150, (n, 4)))
    fluors = _CHANNELS[5:]
    spill = np.eye(4) + 0.02 * (1 - np.eye(4))
    write_fcs(path, events, _CHANNELS, _MARKERS, {"$SPILLOVER": format_spillover(fluors, spill)},
              ranges=[262144] * len(_CHANNELS))


def warm(events: int = 3000) -> float:
    """Compile (or load from the on-disk cache) every kernel of the per-tube pipeline.

    Parameters
    ----------
    events
        Events per synthetic tube.

    Returns
    -------
    float
        Seconds taken.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="immuno-warm-") as tmp:
        folder = Path(tmp)
        (folder / "warm_up.yaml").write_text(_PANEL, encoding="utf-8")
        panel = load_panel(folder / "warm_up.yaml")
        for name in ("stim.fcs", "unstim.fcs"):
            _write_tube(folder / name, rng, events)
        control = SampleInfo("WARM-U", folder / "unstim.fcs", panel, patient_id="P", visit="D0", tube="unstimulated",
                             control_of="WARM-S", batch_id="WARM")
        info = SampleInfo("WARM-S", folder / "stim.fcs", panel, patient_id="P", visit="D0", tube="stimulated",
                          control=control, batch_id="WARM")
        run_unit(info, folder / "out", plots=False)
        # the static path (templates, GatingML documents): float64 chunks of all columns
        fcs = read_fcs(folder / "stim.fcs")
        assert fcs.events is not None
        tree = GateTree([RectangleGate("all", None, ("FSC-A",), (0.0,), (None,))])
        gate_events(fcs.events, fcs.channels, tree, {}, spillover_from_keywords(fcs))
        tree.evaluate(fcs.events.astype(np.float64), fcs.channels)
    # the selection kernel large parents use directly (small ones go to numpy)
    order_stats.percentile(np.linspace(0, 1, 30_000, dtype=np.float32), [1.0, 50.0])
    return time.perf_counter() - start
