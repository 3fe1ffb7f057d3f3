"""GatingML 2.0: import gate files and templates, export the gates placed on a sample.

GatingML lets every gate dimension carry its own compensation (``uncompensated``, the
file's ``FCS`` spillover, or a matrix in the document) and transform, and defines ratio
dimensions. Imported documents are therefore kept as a :class:`GatingDocument`: static
gates of :mod:`immuno.cytometry.gates` whose dimensions are *dimension keys*, plus how
each key is computed from raw events. Keys of plain, uncompensated, untransformed
channels are the channel names themselves.

Parsing and writing the XML is done by FlowKit (the reference GatingML implementation,
already a dependency); the gates are converted to ours and evaluated by
:class:`immuno.cytometry.engine.GateTree`. FlowKit is imported only when a file is read
or written.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from immuno.cytometry.engine import GateTree, SpilloverLike, compensate_solve
from immuno.cytometry.gates import (
    BooleanGate,
    EllipseGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from immuno.cytometry.transforms import (
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

__all__ = [
    "DimensionSpec",
    "RatioSpec",
    "CompensationMatrix",
    "GatingDocument",
    "read_gatingml",
    "valid_gate_id",
    "write_gatingml",
    "document_from_flowkit",
]


@dataclass(frozen=True)
class DimensionSpec:
    """How one gate dimension is computed from raw events.

    Attributes
    ----------
    key
        The name gates use for it.
    channel
        The FCS channel ($PnN, $PnS or a matrix fluorochrome); None for a ratio dimension.
    compensation
        ``"uncompensated"``, ``"FCS"`` (the file's spillover keyword) or a matrix id.
    transform_id
        Id of the transform applied last, or None.
    ratio_id
        Id of the ratio transform defining a ratio dimension, or None.
    """

    key: str
    channel: str | None
    compensation: str = "uncompensated"
    transform_id: str | None = None
    ratio_id: str | None = None


@dataclass(frozen=True)
class RatioSpec:
    """GatingML ``fratio``: ``a * (numerator - b) / (denominator - c)`` on raw values."""

    numerator: str
    denominator: str
    a: float
    b: float
    c: float


@dataclass(frozen=True)
class CompensationMatrix:
    """A spillover matrix of a document: rows fluorochromes, columns detectors."""

    matrix_id: str
    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    matrix: np.ndarray = field(compare=False)


@dataclass
class GatingDocument:
    """Gates plus the recipe for each of their dimensions (see module notes)."""

    gates: list[Gate]
    dimensions: dict[str, DimensionSpec]
    transforms: dict[str, Transform] = field(default_factory=dict)
    ratios: dict[str, RatioSpec] = field(default_factory=dict)
    matrices: dict[str, CompensationMatrix] = field(default_factory=dict)
    source: str = ""

    def tree(self) -> GateTree:
        """The gate hierarchy, ready to evaluate on :meth:`dimension_values`."""
        return GateTree(self.gates)

    def dimension_values(self, raw: np.ndarray, channels: Sequence[str],
                         markers: Sequence[str | None] | None = None,
                         fcs_spill: SpilloverLike | None = None) -> np.ndarray:
        """Compute every dimension the gates use, as float64 columns in ``self.dimensions`` order.

        Parameters
        ----------
        raw
            Raw (preprocessed, uncompensated) events of one file.
        channels, markers
            $PnN and $PnS of the file's columns.
        fcs_spill
            The file's spillover keyword, for dimensions compensated with ``FCS``.
        """
        names = list(channels)
        lookup: dict[str, int] = {}
        for i, m in enumerate(markers or []):
            if m:
                lookup.setdefault(m, i)
        for i, c in enumerate(names):
            lookup.setdefault(c.replace("/", "_"), i)
        for i, c in enumerate(names):
            lookup[c] = i  # $PnN wins over $PnS and FlowJo's renamed labels
        where = self.source or "gating document"

        def column(name: str) -> int:
            if name not in lookup:
                raise UserError.single(where, f"dimension {name!r} is not a channel of the file")
            return lookup[name]

        compensated: dict[str, tuple[dict[str, int], np.ndarray] | None] = {}

        def comp_block(ref: str) -> tuple[dict[str, int], np.ndarray] | None:
            if ref not in compensated:
                if ref == "FCS":
                    # GatingML: 'FCS' without a spillover keyword means uncompensated
                    block = None if fcs_spill is None else (
                        list(fcs_spill.channels), list(fcs_spill.channels),
                        np.asarray(fcs_spill.matrix, dtype=np.float64))
                elif ref in self.matrices:
                    m = self.matrices[ref]
                    block = (list(m.fluorochromes), list(m.detectors), m.matrix)
                else:
                    raise UserError.single(where, f"unknown compensation reference {ref!r}")
                if block is None:
                    compensated[ref] = None
                else:
                    fluoro, detectors, matrix = block
                    cols = [column(d) for d in detectors]
                    values = compensate_solve(raw[:, cols], matrix)
                    pos = {d: j for j, d in enumerate(detectors)}
                    pos.update({f: j for j, f in enumerate(fluoro)})
                    compensated[ref] = (pos, values)
            return compensated[ref]

        out = np.empty((raw.shape[0], len(self.dimensions)), dtype=np.float64)
        for j, spec in enumerate(self.dimensions.values()):
            if spec.ratio_id is not None:
                # FlowKit forms ratios from raw values whatever the compensation reference
                r = self.ratios[spec.ratio_id]
                num = raw[:, column(r.numerator)].astype(np.float64)
                den = raw[:, column(r.denominator)].astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    values = r.a * ((num - r.b) / (den - r.c))
            else:
                assert spec.channel is not None
                block = None
                if spec.compensation not in ("uncompensated", "", None):
                    block = comp_block(spec.compensation)
                if block is not None and spec.channel in block[0]:
                    values = block[1][:, block[0][spec.channel]]
                else:
                    values = raw[:, column(spec.channel)].astype(np.float64)
            if spec.transform_id is not None:
                if spec.transform_id not in self.transforms:
                    raise UserError.single(
                        where, f"dimension {spec.key!r} names an unknown transform {spec.transform_id!r}")
                values = self.transforms[spec.transform_id].apply(np.ascontiguousarray(values))
            out[:, j] = values
        return out

    def evaluate(self, raw: np.ndarray, channels: Sequence[str],
                 markers: Sequence[str | None] | None = None,
                 fcs_spill: SpilloverLike | None = None) -> dict[str, np.ndarray]:
        """Absolute membership of every gate and quadrant on one file's raw events."""
        values = self.dimension_values(raw, channels, markers, fcs_spill)
        return self.tree().evaluate(values, list(self.dimensions))


# ------------------------------------------------------------------ FlowKit -> ours


def _transform_from_flowkit(xform: Any, where: str) -> Transform | RatioSpec:
    from flowkit import transforms as fk

    if isinstance(xform, fk.RatioTransform):
        return RatioSpec(xform.dimensions[0], xform.dimensions[1], float(xform.param_a),
                         float(xform.param_b), float(xform.param_c))
    if isinstance(xform, fk.LinearTransform):
        return LinearTransform(xform.param_t, xform.param_a)
    if isinstance(xform, fk.LogTransform):
        return LogTransform(xform.param_t, xform.param_m)
    if isinstance(xform, fk.LogicleTransform):
        return LogicleTransform(xform.param_t, xform.param_w, xform.param_m, xform.param_a)
    if isinstance(xform, fk.HyperlogTransform):
        return HyperlogTransform(xform.param_t, xform.param_w, xform.param_m, xform.param_a)
    if isinstance(xform, fk.AsinhTransform):
        return AsinhTransform(xform.param_t, xform.param_m, xform.param_a)
    from immuno.cytometry.templates import wsp_transform

    converted = wsp_transform(xform)
    if converted is None:
        raise UserError.single(where, f"transform {type(xform).__name__} is not supported")
    return converted


def document_from_flowkit(strategy: Any, source: str = "", sample_id: str | None = None,
                          extra_transforms: Mapping[str, Any] | None = None) -> GatingDocument:
    """Convert a FlowKit ``GatingStrategy`` (from GatingML or a FlowJo workspace) to ours.

    Gate ids are the gate names; a name used on several branches (FlowJo allows it) is
    qualified by its path, ``parent/child``.

    Parameters
    ----------
    strategy
        The FlowKit gating strategy.
    source
        The file it came from, for messages.
    sample_id
        Use this sample's custom gates where it has them (FlowJo per-sample gates).
    extra_transforms
        Transforms referenced by id but held outside the strategy (FlowJo workspaces keep
        them per sample).
    """
    from flowkit import gates as fkg
    from flowkit.exceptions import QuadrantReferenceError

    where = source or "gating document"
    ids = strategy.get_gate_ids()
    names = [n for n, _ in ids]
    duplicated = {n for n in names if names.count(n) > 1}

    def uid(name: str, path: tuple[str, ...]) -> str:
        if name not in duplicated:
            return name
        return "/".join([*path[1:], name])

    doc = GatingDocument([], {}, source=where)
    all_xforms = dict(strategy.transformations)
    all_xforms.update(extra_transforms or {})
    for xid, xform in all_xforms.items():
        conv = _transform_from_flowkit(xform, where)
        if isinstance(conv, RatioSpec):
            doc.ratios[xid] = conv
        else:
            doc.transforms[xid] = conv
    for mid, m in strategy.comp_matrices.items():
        doc.matrices[mid] = CompensationMatrix(
            mid, tuple(m.fluorochromes), tuple(m.detectors), np.asarray(m.matrix, dtype=np.float64))

    def dim_key(dim: Any) -> str:
        ratio = getattr(dim, "ratio_ref", None)
        channel = None if ratio is not None else getattr(dim, "dimension_ref", None) or dim.id
        comp = dim.compensation_ref or "uncompensated"
        xid = dim.transformation_ref
        if ratio is None and comp == "uncompensated" and xid is None:
            key = channel
        else:
            key = "|".join(str(p) for p in (ratio or channel, comp, xid))
        doc.dimensions.setdefault(key, DimensionSpec(key, channel, comp, xid, ratio))
        return key

    for name, path in ids:
        try:
            g = strategy.get_gate(name, path, sample_id=sample_id)
        except QuadrantReferenceError:
            continue  # quadrants come with their quadrant gate
        gid = uid(name, path)
        parent = None if path == ("root",) else uid(path[-1], path[:-1])
        doc.gates.append(_gate_from_flowkit(g, gid, parent, dim_key, path, uid, fkg))
    return doc


def _gate_from_flowkit(g: Any, gid: str, parent: str | None, dim_key: Any,
                       path: tuple[str, ...], uid: Any, fkg: Any) -> Gate:
    if isinstance(g, fkg.RectangleGate):
        dims = tuple(dim_key(d) for d in g.dimensions)
        return RectangleGate(gid, parent, dims, tuple(d.min for d in g.dimensions),
                             tuple(d.max for d in g.dimensions), bool(g.use_complement))
    if isinstance(g, fkg.PolygonGate):
        dims = tuple(dim_key(d) for d in g.dimensions)
        verts = tuple((float(v[0]), float(v[1])) for v in g.vertices)
        return PolygonGate(gid, parent, (dims[0], dims[1]), verts, bool(g.use_complement))
    if isinstance(g, fkg.EllipsoidGate):
        dims = tuple(dim_key(d) for d in g.dimensions)
        return EllipseGate(gid, parent, dims, tuple(float(v) for v in g.coordinates),
                           tuple(tuple(float(v) for v in row) for row in g.covariance_matrix),
                           float(g.distance_square))
    if isinstance(g, fkg.QuadrantGate):
        by_divider = {d.id: (dim_key(d), [float(v) for v in d.values]) for d in g.dimensions}
        dividers: dict[str, tuple[float, ...]] = {}
        for key, values in by_divider.values():
            dividers[key] = tuple(sorted(set(dividers.get(key, ())) | set(values)))
        quadrants: dict[str, dict[str, int]] = {}
        for qid, q in g.quadrants.items():
            bins: dict[str, int] = {}
            for div_ref in q.divider_refs:
                key, _ = by_divider[div_ref]
                lo, _hi = q.get_divider_range(div_ref)
                bins[key] = 0 if lo is None else dividers[key].index(float(lo)) + 1
            quadrants[uid(qid, (*path, g.gate_name))] = bins
        dims = tuple(dividers)
        return QuadrantGate(gid, parent, dims, dividers, quadrants)
    if isinstance(g, fkg.BooleanGate):
        operands = tuple((uid(r["ref"], tuple(r["path"])), bool(r["complement"]))
                         for r in g.gate_refs)
        return BooleanGate(gid, parent, g.type, operands)
    raise UserError.single(gid, f"gate type {type(g).__name__} is not supported")


def read_gatingml(path: str | os.PathLike[str]) -> GatingDocument:
    """Read a GatingML 2.0 file into a :class:`GatingDocument`.

    Raises
    ------
    UserError
        When the file is missing, is not GatingML 2.0, or uses something unsupported.
    """
    import flowkit

    p = Path(path)
    if not p.is_file():
        raise UserError.single(str(p), "GatingML file not found")
    try:
        strategy = flowkit.parse_gating_xml(str(p))
    except Exception as exc:  # FlowKit raises bare ValueError/KeyError/XML errors
        raise UserError.single(str(p), f"not a readable GatingML 2.0 document: {exc}") from None
    return document_from_flowkit(strategy, source=str(p))


# ------------------------------------------------------------------ ours -> GatingML

SPILL_ID = "spill"
# GatingML ids are XML names (xs:ID); FlowKit refuses documents with others
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: suffix of the shape written beside a complemented (FlowJo "exclude") gate
INSIDE_SUFFIX = "_inside"


def _flowkit_transform(tr: Transform) -> Any:
    from flowkit import transforms as fk

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
        mask (:func:`immuno.cytometry.acquisition_qc.keep_gates`).
    root
        A membership id of ``raw_gates`` that becomes the parent of every top-level gate
        of ``gates``, so the hierarchy starts from the events it holds.

    Returns
    -------
    Path
        The written file.
    """
    import flowkit as fk

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
