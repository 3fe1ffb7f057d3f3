"""GatingML 2.0 export: the gates placed on a sample, written so FlowKit and FlowJo open them.

The XML is written by FlowKit (imported only here, when a file is written). Gates on
transformed, compensated data carry the document's own spillover matrix and transforms;
gates on raw values (acquisition QC's keep mask) are written uncompensated and
untransformed, and can hold the rest of the hierarchy below them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from immuno.cytometry.engine.compensation import SpilloverLike
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.engine.gates import (
    BooleanGate,
    EllipseGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from immuno.cytometry.engine.transforms import (
    ArcsinhCofactor,
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
)
from immuno.errors import UserError
from immuno.io import atomic_path

__all__ = ["INSIDE_SUFFIX", "SPILL_ID", "valid_gate_id", "write_gatingml"]

SPILL_ID = "spill"
# GatingML ids are XML names (xs:ID); FlowKit refuses documents with others
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: suffix of the shape written beside a complemented (FlowJo "exclude") gate
INSIDE_SUFFIX = "_inside"


def _flowkit_transform(tr: Transform) -> Any:
    from flowkit import transforms as fk  # FlowKit, slow to import: only to write GatingML

    if isinstance(tr, LinearTransform):
        return fk.LinearTransform(param_t=tr.t, param_a=tr.a)
    if isinstance(tr, LogTransform):
        return fk.LogTransform(param_t=tr.t, param_m=tr.m)
    if isinstance(tr, LogicleTransform):
        return fk.LogicleTransform(param_t=tr.t, param_w=tr.w, param_m=tr.m, param_a=tr.a)
    if isinstance(tr, HyperlogTransform):
        return fk.HyperlogTransform(param_t=tr.t, param_w=tr.w, param_m=tr.m, param_a=tr.a)
    if isinstance(tr, AsinhTransform):
        return fk.AsinhTransform(param_t=tr.t, param_m=tr.m, param_a=tr.a)
    if isinstance(tr, ArcsinhCofactor):
        # fasinh with M = 1/ln10, A = 0 and T = cofactor * sinh(1) is exactly
        # asinh(x / cofactor): the gate coordinates carry over unchanged
        return fk.AsinhTransform(param_t=tr.cofactor * math.sinh(1.0),
                                 param_m=1.0 / math.log(10.0), param_a=0.0)
    raise UserError.single(
        "GatingML export", f"{type(tr).__name__} has no GatingML 2.0 equivalent; "
        "use logicle, arcsinh, asinh, linear, log or hyperlog for exported gates")


def write_gatingml(gates: Sequence[Gate], transforms: Mapping[str, Transform | None],
                   spill: SpilloverLike | None, path: str | os.PathLike[str], *,
                   raw_gates: Sequence[Gate] = (), root: str | None = None) -> Path:
    """Write gates placed on a sample as a GatingML 2.0 file that FlowKit and FlowJo open.

    Parameters
    ----------
    gates
        Static gates whose dimensions are channel names ($PnN), in transformed units.
    transforms
        Channel -> the transform the gate coordinates are on (None: data scale).
    spill
        The spillover the events were compensated with; written into the file as a
        matrix so that the document does not depend on the FCS keyword.
    path
        Output file (written atomically).
    raw_gates
        Gates on raw values (uncompensated, untransformed), e.g. acquisition QC's keep
        mask (:func:`immuno.cytometry.analysis.acquisition_qc.keep_gates`).
    root
        A membership id of ``raw_gates`` that becomes the parent of every top-level gate
        of ``gates``, so the hierarchy starts from the events it holds.

    Returns
    -------
    Path
        The written file.
    """
    import flowkit as fk  # FlowKit, slow to import: only to write GatingML

    raw_ids = {g.gate_id for g in raw_gates}
    if root is not None:
        gates = [dataclasses.replace(g, parent_id=root) if g.parent_id is None else g for g in gates]
    tree = GateTree([*raw_gates, *gates])  # validates ids, parents and operands
    bad = [oid for oid in tree.membership_ids if not _XML_NAME.match(oid)]
    if bad:
        raise UserError.single(
            str(path), f"gate id(s) {', '.join(map(repr, bad))} are not valid GatingML ids: use "
            "letters, digits, '_', '-' and '.', starting with a letter or '_'")
    strategy = fk.GatingStrategy()
    comp_channels: set[str] = set()
    if spill is not None:
        chans = list(spill.channels)
        strategy.add_comp_matrix(
            SPILL_ID, fk.Matrix(np.asarray(spill.matrix, dtype=np.float64), chans, chans))
        comp_channels = set(chans)
    xform_ids: dict[str, str] = {}
    for channel in _dims(gates):
        tr = transforms.get(channel)
        if tr is not None:
            xid = f"{tr.kind}_{channel}"
            strategy.add_transform(xid, _flowkit_transform(tr))
            xform_ids[channel] = xid

    def dim(channel: str, lo: float | None = None, hi: float | None = None) -> Any:
        return fk.Dimension(channel, SPILL_ID if channel in comp_channels else "uncompensated",
                            xform_ids.get(channel), range_min=lo, range_max=hi)

    def raw_dim(channel: str, lo: float | None = None, hi: float | None = None) -> Any:
        return fk.Dimension(channel, "uncompensated", None, range_min=lo, range_max=hi)

    paths: dict[str, tuple[str, ...]] = {}
    quadrant_of: dict[str, str] = {}
    for gid in tree.order:
        g = tree.gates[gid]
        if isinstance(g, QuadrantGate):
            for qid in g.quadrants:
                quadrant_of[qid] = gid

    def path_of(parent: str | None) -> tuple[str, ...]:
        if parent is None:
            return ("root",)
        if parent in quadrant_of:
            owner = quadrant_of[parent]
            return (*paths[owner], owner, parent)
        return (*paths[parent], parent)

    for gid in tree.order:
        g = tree.gates[gid]
        paths[gid] = path_of(g.parent_id)
        if isinstance(g, (RectangleGate, PolygonGate)) and g.complement:
            # GatingML 2.0 has no complement flag on shapes (FlowJo's "exclude"): write
            # the shape itself beside it and the gate as NOT of that shape
            inside = dataclasses.replace(g, gate_id=f"{gid}{INSIDE_SUFFIX}", complement=False)
            paths[inside.gate_id] = paths[gid]
            strategy.add_gate(_flowkit_gate(inside, dim, fk, path_of), paths[gid])
            g = BooleanGate(gid, g.parent_id, "not", ((inside.gate_id, False),))
        strategy.add_gate(_flowkit_gate(g, raw_dim if gid in raw_ids else dim, fk, path_of), paths[gid])
    out = Path(path)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        fk.export_gatingml(strategy, fh)
    return out


def valid_gate_id(gate_id: str) -> bool:
    """Whether a gate id can be written as a GatingML id (an XML NCName of ASCII letters,
    digits, ``_``, ``-`` and ``.``)."""
    return bool(_XML_NAME.match(gate_id))


def _dims(gates: Sequence[Gate]) -> list[str]:
    seen: dict[str, None] = {}
    for g in gates:
        for d in g.dims:
            seen.setdefault(d, None)
    return list(seen)


def _flowkit_gate(g: Gate, dim: Any, fk: Any, path_of: Any) -> Any:
    if isinstance(g, RectangleGate):
        dims = [dim(d, lo, hi) for d, lo, hi in zip(g.dims, g.mins, g.maxs, strict=True)]
        return fk.gates.RectangleGate(g.gate_id, dims, use_complement=g.complement)
    if isinstance(g, PolygonGate):
        return fk.gates.PolygonGate(g.gate_id, [dim(d) for d in g.dims],
                                    [list(v) for v in g.vertices], use_complement=g.complement)
    if isinstance(g, EllipseGate):
        return fk.gates.EllipsoidGate(g.gate_id, [dim(d) for d in g.dims], list(g.mean),
                                      [list(r) for r in g.covariance], g.distance_square)
    if isinstance(g, QuadrantGate):
        dividers = []
        for j, d in enumerate(g.dims):
            base = dim(d)
            dividers.append(fk.QuadrantDivider(f"{g.gate_id}_div{j + 1}", d, base.compensation_ref,
                                               list(g.dividers[d]), base.transformation_ref))
        quadrants = []
        for qid, bins in g.quadrants.items():
            refs, ranges = [], []
            for j, d in enumerate(g.dims):
                if d not in bins:
                    continue
                values = g.dividers[d]
                b = bins[d]
                refs.append(f"{g.gate_id}_div{j + 1}")
                ranges.append((values[b - 1] if b > 0 else None,
                               values[b] if b < len(values) else None))
            quadrants.append(fk.gates.Quadrant(qid, refs, ranges))
        return fk.gates.QuadrantGate(g.gate_id, dividers, quadrants)
    if isinstance(g, BooleanGate):
        refs = [{"ref": ref, "path": _operand_path(ref, path_of), "complement": comp}
                for ref, comp in g.operands]
        return fk.gates.BooleanGate(g.gate_id, g.op, refs)
    raise TypeError(f"unknown gate type {type(g).__name__}")


def _operand_path(ref: str, path_of: Any) -> tuple[str, ...]:
    """FlowKit's gate path of an operand (its parent's path, as for any gate)."""
    return path_of(ref)[:-1]
