"""GatingML 2.0: import gate files and templates, export the gates placed on a sample.

GatingML lets every gate dimension carry its own compensation (``uncompensated``, the
file's ``FCS`` spillover, or a matrix in the document) and transform, and defines ratio
dimensions. Imported documents are therefore kept as a :class:`GatingDocument`: static
gates of :mod:`immuno.cytometry.engine.gates` whose dimensions are *dimension keys*, plus how
each key is computed from raw events. Keys of plain, uncompensated, untransformed
channels are the channel names themselves.

Writing lives in :mod:`immuno.cytometry.io.gatingml_export` (re-exported here). Parsing
and writing the XML is done by FlowKit (the reference GatingML implementation,
already a dependency); the gates are converted to ours and evaluated by
:class:`immuno.cytometry.engine.gate_tree.GateTree`. FlowKit is imported only when a file is read
or written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from immuno.cytometry.engine.compensation import SpilloverLike, compensate_solve
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
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
)
from immuno.cytometry.io.flowjo import wsp_transform
from immuno.cytometry.io.gatingml_export import (
    INSIDE_SUFFIX,
    SPILL_ID,
    valid_gate_id,
    write_gatingml,
)
from immuno.errors import UserError

__all__ = [
    "DimensionSpec",
    "RatioSpec",
    "CompensationMatrix",
    "GatingDocument",
    "read_gatingml",
    "valid_gate_id",
    "INSIDE_SUFFIX",
    "SPILL_ID",
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
    from flowkit import transforms as fk  # FlowKit, slow to import: only when a gating file is read

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
    from flowkit import gates as fkg  # FlowKit, slow to import: only when a gating file is read

    # FlowKit, slow to import: only when a gating file is read
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
    import flowkit  # FlowKit, slow to import: only when a gating file is read

    p = Path(path)
    if not p.is_file():
        raise UserError.single(str(p), "GatingML file not found")
    try:
        strategy = flowkit.parse_gating_xml(str(p))
    except Exception as exc:  # FlowKit raises bare ValueError/KeyError/XML errors
        raise UserError.single(str(p), f"not a readable GatingML 2.0 document: {exc}") from None
    return document_from_flowkit(strategy, source=str(p))
