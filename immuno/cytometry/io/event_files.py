"""Per-event ``.h5ad`` files: one tube's events, written compressed without a string index.

The file follows AnnData's on-disk format, so ``anndata.read_h5ad`` (and scanpy) open it
as usual. It is written here with h5py rather than through an in-memory AnnData because
AnnData insists on a string index: building one for a million events costs more than
the rest of a tube's processing, and it would be stored uncompressed beside the data.
Instead:

- ``X`` (and any layer) is written chunk by chunk straight from the caller's array,
  whatever its memory order, as a chunked dataset with HDF5's shuffle and deflate filters
  (gzip: readable by every HDF5 library, no plugin needed), the chunks compressed on
  worker threads;
- ``obs`` holds the event number as an integer index (``0 .. n-1``) and one column per
  given array (QC flags and gate memberships, as booleans), each compressed; AnnData
  turns the index into strings when it reads the file, with a warning;
- ``var`` and ``uns`` are written by AnnData's own element writer.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.io import atomic_path

__all__ = ["COMPRESSION", "write_events_h5ad"]

#: the filter settings of every dataset holding events; level 1 is as small as level 4
#: to within a few per cent on cytometry data, and twice as fast
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: events per stored chunk (and per block written)
CHUNK_ROWS = 32768
#: HDF5 1.10's object headers: a third smaller per dataset than the 1.8 defaults, which
#: matters for small tubes (a file holds some sixty datasets); every reader since 2016 has them
LIBVER = ("v110", "latest")


def _array_attrs(ds: Any) -> None:
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"


def _stored_chunk(values: np.ndarray, start: int, rows: int) -> bytes:
    """One chunk as HDF5 stores it with these filters: the chunk's rows (padded to full
    size), byte-shuffled (every value's first bytes, then its second ...), then deflated."""
    block = np.zeros((rows, values.shape[1]), dtype=values.dtype)
    part = values[start:start + rows]
    block[: part.shape[0]] = part
    planes = block.view(np.uint8).reshape(-1, block.dtype.itemsize).T
    # a compressor object releases the interpreter while it works (zlib.compress does not)
    packer = zlib.compressobj(COMPRESSION["compression_opts"])
    return packer.compress(np.ascontiguousarray(planes)) + packer.flush()


def _write_matrix(group: Any, name: str, values: np.ndarray) -> None:
    """A 2-D array written chunk by chunk (no full copy, whatever its memory order).

    The chunks are compressed on worker threads (zlib releases the interpreter) and
    handed to HDF5 already filtered, so compressing a tube's events takes a fraction of
    its time on a machine with a free core; the file is the one h5py would write.
    """
    n, p = values.shape
    chunks = (max(1, min(CHUNK_ROWS, n)), max(p, 1)) if n and p else None
    ds = group.create_dataset(name, shape=values.shape, dtype=values.dtype, chunks=chunks,
                              **(COMPRESSION if chunks else {}))
    if chunks is not None:
        rows = chunks[0]
        starts = range(0, n, rows)
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            for start, data in zip(starts, pool.map(lambda s: _stored_chunk(values, s, rows), starts),
                                   strict=True):
                ds.id.write_direct_chunk((start, 0), data)
    _array_attrs(ds)


def _write_column(group: Any, name: str, values: np.ndarray) -> None:
    chunks = (max(1, min(CHUNK_ROWS * 8, values.shape[0])),) if values.shape[0] else None
    ds = group.create_dataset(name, data=values, chunks=chunks, **(COMPRESSION if chunks else {}))
    _array_attrs(ds)


def write_events_h5ad(path: str | os.PathLike[str], x: np.ndarray, *,
                      obs: Mapping[str, Callable[[], np.ndarray]], var: pd.DataFrame,
                      uns: Mapping[str, Any], layers: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write one tube's events as an ``.h5ad`` file (atomically).

    Parameters
    ----------
    path
        The file to write.
    x
        ``(n_events, n_channels)`` values (the transformed events), any memory order.
    obs
        Column name -> a function returning the column (called one at a time, so that
        packed gate memberships are unpacked one column at a time).
    var
        One row per channel, indexed by channel name.
    uns
        Unstructured metadata (anything AnnData can write: dicts, lists, DataFrames ...).
    layers
        Further ``(n_events, n_channels)`` arrays (e.g. ``raw``, ``compensated``).

    Returns
    -------
    Path
        ``path``.
    """
    import h5py  # h5py, anndata: slow to import; only when an event file is written
    from anndata.io import write_elem  # anndata: only when an event file is written

    n = x.shape[0]
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=LIBVER) as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        _write_matrix(f, "X", x)
        o = f.create_group("obs")
        o.attrs["encoding-type"] = "dataframe"
        o.attrs["encoding-version"] = "0.2.0"
        o.attrs["_index"] = "_index"
        names = list(obs)
        o.attrs["column-order"] = np.array(names, dtype=object) if names else np.array([], dtype="S1")
        _write_column(o, "_index", np.arange(n, dtype=np.int64))
        for name in names:
            column = np.asarray(obs[name]())
            if column.shape != (n,):
                raise ValueError(f"obs column {name!r} has shape {column.shape}, expected ({n},)")
            _write_column(o, name, column)
        write_elem(f, "var", var)
        write_elem(f, "uns", dict(uns))
        lay = f.create_group("layers")
        lay.attrs["encoding-type"] = "dict"
        lay.attrs["encoding-version"] = "0.1.0"
        for name, values in (layers or {}).items():
            _write_matrix(lay, name, values)
        for empty in ("obsm", "varm", "obsp", "varp"):
            write_elem(f, empty, {})
    return Path(path)
