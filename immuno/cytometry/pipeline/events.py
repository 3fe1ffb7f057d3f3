"""One tube's events as the pipeline holds them between ingest and its output file.

:class:`TubeEvents` is what a per-event AnnData holds, without AnnData's costs: the
transformed events as one column-major float32 matrix (each channel contiguous, as the
gates and statistics read it), the acquisition QC flags, the gate and population
memberships packed eight events to a byte, ``var`` and ``uns``. The raw and
compensated values are kept only when asked for (a panel's ``keep_layers:``): the FCS
file stays the original record. :meth:`TubeEvents.to_anndata` builds the AnnData a
notebook expects; :meth:`TubeEvents.write` writes the compressed ``.h5ad`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.cytometry.analysis.acquisition_qc import FLAG_COLUMNS, AcquisitionQC
from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.engine.transforms import Transform
from immuno.cytometry.io.event_files import write_events_h5ad

__all__ = ["LAYERS", "TubeEvents", "pack", "unpack"]

#: the layers a panel may ask to keep beside X
LAYERS = ("raw", "compensated")


def pack(mask: np.ndarray) -> np.ndarray:
    """A boolean membership packed eight events to a byte."""
    return np.packbits(np.asarray(mask, dtype=bool), bitorder="little")


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """The boolean membership of :func:`pack`."""
    return np.unpackbits(packed, count=n, bitorder="little").view(bool)


@dataclass
class TubeEvents:
    """One tube's ingested events (see the module description).

    Attributes
    ----------
    x
        ``(n_events, n_channels)`` transformed values, float32, column-major; columns are
        the panel's channels in panel order.
    var
        One row per channel (index ``$PnN``): ``marker``, ``pns``, ``range``,
        ``transform_name``, ``transform``, ``transform_params``.
    qc
        The acquisition QC of the tube (per-event flags, time bins, parameters).
    uns
        ``provenance``, ``keywords``, ``fcs_notes``, ``unlabelled_channels`` and, once
        known, ``sample_id``, ``sample`` and ``gates``.
    transforms
        Channel -> the transform applied (None: untransformed).
    spill
        The spillover matrix used (None: not compensated).
    layers
        ``raw`` and/or ``compensated`` values when kept (float32).
    memberships
        Gate and population name -> packed membership (see :func:`pack`).
    """

    x: np.ndarray
    var: pd.DataFrame
    qc: AcquisitionQC
    uns: dict[str, Any]
    transforms: dict[str, Transform | None]
    spill: Spillover | None
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    memberships: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        """Number of events."""
        return int(self.x.shape[0])

    @property
    def channels(self) -> list[str]:
        """The columns of :attr:`x` ($PnN)."""
        return [str(c) for c in self.var.index]

    @property
    def keep(self) -> np.ndarray:
        """Events passing acquisition QC (the root of every gate)."""
        return self.qc.flags["qc_pass"].to_numpy(dtype=bool)

    def add_memberships(self, masks: Mapping[str, np.ndarray]) -> None:
        """Record gate and population memberships (``"root"`` is the QC keep mask, skipped)."""
        for name, mask in masks.items():
            if name != "root":
                self.memberships[name] = pack(mask)

    def membership(self, name: str) -> np.ndarray:
        """The boolean membership of one gate or population."""
        return unpack(self.memberships[name], self.n_events)

    def membership_view(self) -> Mapping[str, np.ndarray]:
        """Every membership as a read-only mapping that unpacks on access (``"root"``: the
        events acquisition QC kept), for figures and exports."""
        return _Unpacked(self)

    def obs_columns(self) -> dict[str, Any]:
        """``obs`` column name -> a function giving the column: the QC flags, then each
        gate and population (prefixed ``gate:`` where a name is already a QC column)."""
        flags = self.qc.flags
        columns: dict[str, Any] = {c: (lambda c=c: flags[c].to_numpy(dtype=bool)) for c in (*FLAG_COLUMNS, "qc_pass")}
        for name in self.memberships:
            key = name if name not in columns else f"gate:{name}"
            columns[key] = lambda name=name: self.membership(name)
        return columns

    def to_anndata(self) -> Any:
        """The events as an in-memory AnnData (string event index, as AnnData requires)."""
        import anndata as ad  # anndata, slow to import: only for an in-memory AnnData

        obs = pd.DataFrame({k: f() for k, f in self.obs_columns().items()})
        obs.index = pd.RangeIndex(self.n_events, name="event").astype(str)
        adata = ad.AnnData(X=np.ascontiguousarray(self.x), obs=obs, var=self.var.copy(),
                           layers={k: np.ascontiguousarray(v) for k, v in self.layers.items()})
        adata.uns.update(self.uns)
        adata.uns["acquisition_qc"] = {"bins": self.qc.bins.reset_index(drop=True)}
        return adata

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the compressed per-event ``.h5ad`` (see :mod:`immuno.cytometry.io.event_files`).

        The file's ``uns["keywords"]`` is a two-column table (``keyword``, ``value``): a
        hundred keywords written as a hundred HDF5 objects cost more than a tube's events.
        """
        uns = {**self.uns, "acquisition_qc": {"bins": self.qc.bins.reset_index(drop=True)}}
        keywords = uns.get("keywords")
        if isinstance(keywords, Mapping):
            uns["keywords"] = pd.DataFrame({"keyword": pd.Series(list(keywords), dtype=object),
                                            "value": pd.Series([str(v) for v in keywords.values()], dtype=object)})
        return write_events_h5ad(path, self.x, obs=self.obs_columns(), var=self.var, uns=uns, layers=self.layers)


class _Unpacked(Mapping):
    """Name -> boolean membership of a :class:`TubeEvents`, unpacked when read."""

    def __init__(self, tube: TubeEvents) -> None:
        self._tube = tube

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "root":
            return self._tube.keep
        return self._tube.membership(name)

    def __iter__(self) -> Iterator[str]:
        return iter(["root", *self._tube.memberships])

    def __len__(self) -> int:
        return 1 + len(self._tube.memberships)
