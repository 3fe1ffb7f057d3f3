"""Manual gating templates: a lab's FlowJo 10 workspace or GatingML file, applied unchanged.

A panel may name a template instead of (or besides) its own gates. The template's gates
are read once (FlowKit parses both formats), converted to our static gates, and then
applied to every file of a batch by our engine; the counts equal FlowKit's evaluation of
the same template on the same file.

FlowJo specifics handled here:

- a workspace holds gates per sample (and per group); by default the first sample's
  gates are the template, or the sample named by ``sample_id``;
- FlowJo names compensated channels with a prefix (``Comp-FITC-A``); the sample's
  spillover matrix in the workspace is applied to them;
- FlowJo's own transforms (its biexponential lookup table and log scale) are evaluated
  by FlowKit's implementation, which reproduces FlowJo's tables; ellipses are turned into
  polygons by FlowKit as it reads the workspace (FlowJo stores them in display bins).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from immuno.cytometry.event_pass import SpilloverLike
from immuno.cytometry.gatingml import GatingDocument, document_from_flowkit, read_gatingml
from immuno.cytometry.transforms import Transform
from immuno.errors import UserError

__all__ = ["FlowJoTransform", "read_template", "apply_template", "wsp_transform"]

_GATINGML_SUFFIXES = {".xml", ".gml", ".gatingml"}


class FlowJoTransform(Transform):
    """A FlowJo 10 display transform (``biex`` lookup table or ``log``), as FlowKit evaluates it.

    FlowJo's biexponential is defined by its own interpolated lookup table rather than by
    the logicle formula, so it is delegated to FlowKit's reproduction of that table.
    """

    kind = "flowjo"

    def __init__(self, flowkit_transform: Any) -> None:
        self._fk = flowkit_transform

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fk.apply(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        if not hasattr(self._fk, "inverse"):
            raise NotImplementedError(f"{type(self._fk).__name__} has no inverse")
        return np.asarray(self._fk.inverse(np.asarray(y, dtype=np.float64)), dtype=np.float64)

    @property
    def params(self) -> dict[str, float]:
        names = ("negative", "width", "positive", "max_value", "offset", "decades")
        return {n: float(getattr(self._fk, n)) for n in names if hasattr(self._fk, n)}

    def spec(self) -> dict[str, Any]:
        return {"type": f"flowjo_{type(self._fk).__name__}", **self.params}


def wsp_transform(xform: Any) -> Transform | None:
    """Our transform for one of FlowJo's workspace transforms, or None if it is not one."""
    if type(xform).__name__ in ("WSPBiexTransform", "WSPLogTransform"):
        return FlowJoTransform(xform)
    return None


def read_template(path: str | os.PathLike[str], sample_id: str | None = None) -> GatingDocument:
    """Read a gating template: a FlowJo 10 workspace (``.wsp``) or a GatingML 2.0 file.

    Parameters
    ----------
    path
        The template file.
    sample_id
        For a workspace, the sample whose gates to take (default: its first sample).

    Returns
    -------
    GatingDocument
        Gates plus how each gate dimension is compensated and transformed.

    Raises
    ------
    UserError
        Missing file, unknown format, unreadable content, or an unknown ``sample_id``.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError.single(str(p), "gating template not found")
    suffix = p.suffix.lower()
    if suffix in _GATINGML_SUFFIXES:
        return read_gatingml(p)
    if suffix != ".wsp":
        raise UserError.single(
            str(p), "a gating template must be a FlowJo workspace (.wsp) or GatingML (.xml)")
    import flowkit as fk

    try:
        with warnings.catch_warnings():
            # FlowKit warns for every sample whose FCS file it was not given; the template
            # needs only the gates
            warnings.simplefilter("ignore")
            ws = fk.Workspace(str(p), load_missing_file_data=True)
    except Exception as exc:  # lxml / FlowKit raise many kinds for a damaged workspace
        raise UserError.single(str(p), f"not a readable FlowJo workspace: {exc}") from None
    samples = ws.get_sample_ids(loaded_only=False)
    if not samples:
        raise UserError.single(str(p), "the workspace holds no sample with gates")
    chosen = samples[0] if sample_id is None else sample_id
    if chosen not in samples:
        raise UserError.single(
            str(p), f"sample {chosen!r} is not in the workspace; it has {', '.join(samples)}")
    strategy = ws.get_gating_strategy(chosen)
    # the sample's own (custom) gates where FlowJo has them, the group's otherwise
    return document_from_flowkit(strategy, source=f"{p} (sample {chosen})", sample_id=chosen,
                                 extra_transforms=ws.get_transforms(chosen) or {})


def apply_template(template: GatingDocument | str | os.PathLike[str], events: np.ndarray,
                   channels: Sequence[str], spill: SpilloverLike | None = None,
                   markers: Sequence[str | None] | None = None) -> dict[str, np.ndarray]:
    """Apply a gating template to one file's raw events.

    Parameters
    ----------
    template
        A document from :func:`read_template`, or the template's path.
    events
        Raw (uncompensated, untransformed) events, ``(n_events, n_channels)``.
    channels, markers
        The file's $PnN and $PnS.
    spill
        The file's own spillover (its keyword), used where the template says ``FCS``.

    Returns
    -------
    dict
        Gate (or quadrant) id -> bool membership over all events.
    """
    doc = template if isinstance(template, GatingDocument) else read_template(template)
    return doc.evaluate(np.asarray(events), channels, markers, spill)
