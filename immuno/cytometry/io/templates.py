"""Manual gating templates: a lab's FlowJo 10 workspace or GatingML file, applied unchanged.

A panel may name a template instead of (or besides) its own gates. The template's gates
are read once (FlowKit parses both formats), converted to our static gates, and then
applied to every file of a batch by our engine; the counts equal FlowKit's evaluation of
the same template on the same file.

FlowJo specifics handled here:

- a workspace holds gates per sample (and per group); by default the first sample's
  gates are the template, or those of the sample (``sample_id``) or FlowJo group
  (``group``) named; FACSDiva XML, FlowJo 9 workspaces and GatingML 1.5 are refused with
  one line saying what they are (:func:`~immuno.cytometry.io.template_files.sniff_template`);
- FlowJo names compensated channels with a prefix (``Comp-FITC-A``); the sample's
  spillover matrix in the workspace is applied to them;
- FlowJo's own transforms (its biexponential lookup table and log scale) are evaluated
  by FlowKit's implementation, which reproduces FlowJo's tables; ellipses are turned into
  polygons by FlowKit as it reads the workspace (FlowJo stores them in display bins).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.cytometry.engine.compensation import SpilloverLike
from immuno.cytometry.io.flowjo import FlowJoTransform, wsp_transform
from immuno.cytometry.io.gatingml import GatingDocument, document_from_flowkit, read_gatingml
from immuno.cytometry.io.spillover import spillover_from_keywords
from immuno.cytometry.io.template_files import sniff_template
from immuno.errors import UserError

__all__ = ["FlowJoTransform", "apply_template", "read_template", "template_counts", "wsp_transform"]


def read_template(path: str | os.PathLike[str], sample_id: str | None = None,
                  group: str | None = None) -> GatingDocument:
    """Read a gating template: a FlowJo 10 workspace (``.wsp``) or a GatingML 2.0 file.

    Parameters
    ----------
    path
        The template file.
    sample_id
        For a workspace, the sample whose gates to take (its own gates where FlowJo has
        custom ones, its group's otherwise).
    group
        For a workspace, the FlowJo group whose gates to take (its first sample's); the
        default is the workspace's first sample.

    Returns
    -------
    GatingDocument
        Gates plus how each gate dimension is compensated and transformed.

    Raises
    ------
    UserError
        Missing file, a file of another kind (FACSDiva XML, FlowJo 9 workspace ... are
        named as such), unreadable content, or an unknown ``sample_id`` or ``group``.
    """
    p = Path(path)
    if sniff_template(p) == "gatingml":
        return read_gatingml(p)
    import flowkit as fk  # FlowKit, slow to import: only for a FlowJo workspace

    try:
        with warnings.catch_warnings():
            # FlowKit warns for every sample whose FCS file it was not given; the template
            # needs only the gates
            warnings.simplefilter("ignore")
            ws = fk.Workspace(str(p), load_missing_file_data=True)
    except Exception as exc:  # lxml / FlowKit raise many kinds for a damaged workspace
        raise UserError.single(str(p), f"not a readable FlowJo workspace: {exc}") from None
    samples = ws.get_sample_ids(loaded_only=False)
    if group is not None:
        groups = list(ws.get_sample_groups())
        if group not in groups:
            raise UserError.single(str(p), f"group {group!r} is not in the workspace; it has {', '.join(groups)}")
        in_group = list(ws.get_sample_ids(group_name=group, loaded_only=False))
        if sample_id is not None and sample_id not in in_group:
            raise UserError.single(str(p), f"sample {sample_id!r} is not in group {group!r}; the group has "
                                   f"{', '.join(in_group) or 'no sample'}")
        samples = in_group
    if not samples:
        raise UserError.single(str(p), "the workspace holds no sample with gates"
                               + (f" in group {group!r}" if group else ""))
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


def _parent_of(gate: Any) -> str | None:
    return getattr(gate, "parent_id", None)


def template_counts(template: GatingDocument, fcs: Any, stored: Mapping[tuple[str, ...], int] | None = None,
                    root_mask: np.ndarray | None = None) -> pd.DataFrame:
    """Events in every gate of a template applied to one file, beside FlowJo's stored counts.

    Parameters
    ----------
    template
        From :func:`read_template`.
    fcs
        The file, read with its events (:func:`immuno.cytometry.io.fcs.read_fcs`).
    stored
        FlowJo's counts for this sample (:func:`~immuno.cytometry.io.template_files.stored_counts`),
        by population path; compared where given.
    root_mask
        Only these events (all by default, as FlowJo counts).

    Returns
    -------
    pandas.DataFrame
        gate, parent, count, parent_count, pct_of_parent, flowjo_count (-1 where FlowJo
        stores none), equal (count == flowjo_count, or NA).
    """
    uses_fcs = any(d.compensation == "FCS" for d in template.dimensions.values())
    spill = spillover_from_keywords(fcs) if uses_fcs else None
    masks = apply_template(template, fcs.events, fcs.channels, spill, fcs.markers)
    if root_mask is not None:
        masks = {k: v & root_mask for k, v in masks.items()}
    n_root = int(fcs.n_events if root_mask is None else root_mask.sum())
    paths = _gate_paths(template)
    rows = []
    for gid, mask in masks.items():
        parent = paths.get(gid, ((), None))[1]
        count = int(mask.sum())
        parent_count = int(masks[parent].sum()) if parent in masks else n_root
        flowjo = (stored or {}).get(paths.get(gid, ((gid,), None))[0], -1)
        rows.append({"gate": gid, "parent": parent or "root", "count": count, "parent_count": parent_count,
                     "pct_of_parent": 100.0 * count / parent_count if parent_count else float("nan"),
                     "flowjo_count": flowjo, "equal": (count == flowjo) if flowjo >= 0 else pd.NA})
    return pd.DataFrame(rows, columns=["gate", "parent", "count", "parent_count", "pct_of_parent",
                                       "flowjo_count", "equal"])


def _gate_paths(template: GatingDocument) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """Gate or quadrant id -> (population path of names from the top, parent id)."""
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for g in template.gates:
        ids = list(getattr(g, "quadrants", {}) or {}) or [g.gate_id]
        for i in ids:
            parents[i] = _parent_of(g)
            names[i] = i.split("/")[-1]
    out = {}
    for gid in parents:
        path, cur = [], gid
        while cur is not None:
            path.append(names.get(cur, cur))
            cur = parents.get(cur)
        out[gid] = (tuple(reversed(path)), parents[gid])
    return out


_PANEL_TEMPLATES: dict[tuple[str, str], GatingDocument] = {}


def panel_template(panel: Any) -> GatingDocument | None:
    """The gating template a panel names (``template: {file, group, sample}``), read once.

    The file is relative to the panel's folder. Returns None for a panel without one.

    Raises
    ------
    UserError
        When the template cannot be read (naming the panel key and the file).
    """
    spec = panel.get("template")
    if not spec:
        return None
    key = (str(panel.path), str(panel.sha256))
    if key not in _PANEL_TEMPLATES:
        path = Path(panel.path).parent / str(spec["file"])
        _PANEL_TEMPLATES[key] = read_template(path, sample_id=spec.get("sample"), group=spec.get("group"))
    return _PANEL_TEMPLATES[key]


def template_gate_specs(template: GatingDocument) -> list[dict[str, Any]]:
    """The template's gates as panel-style specs (id, parent, type), so that populations,
    headline features and statistics refer to template gates as to panel gates."""
    specs: list[dict[str, Any]] = []
    for g in template.gates:
        quadrants = list(getattr(g, "quadrants", {}) or {})
        spec: dict[str, Any] = {"id": g.gate_id, "parent": _parent_of(g), "type": "template"}
        if quadrants:
            spec |= {"type": "quadrant", "quadrants": {q: [] for q in quadrants}}
        specs.append(spec)
    return specs


def template_channels(template: GatingDocument) -> list[str]:
    """The FCS channels the template's gates read (ratio dimensions included)."""
    out: list[str] = []
    for d in template.dimensions.values():
        names = [d.channel] if d.channel is not None else []
        ratio = template.ratios.get(d.ratio_id or "")
        if ratio is not None:
            names += [ratio.numerator, ratio.denominator]
        out += [n for n in names if n and n not in out]
    return out
