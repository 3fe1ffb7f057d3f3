"""One FCS file -> one tube's events, ready for gating (:class:`TubeEvents`), or an AnnData.

:func:`read_tube` reads the file (the panel's data set of a multi-data-set file), checks
it has every channel the panel names and that its ``$PnS`` agree with the panel's
markers, flags events by acquisition QC on the raw values, then compensates (matrix
from the file's keyword, a matrix file, or the batch's single-stain matrix) and
transforms the panel's channels in one pass over the events, into one float32 matrix;
the file's checksum is computed on a second thread meanwhile. The raw events are then
released: the FCS file stays the original record, and raw or compensated copies are
kept only when asked (a panel's ``keep_layers:``). :func:`ingest_sample` returns the
same as an AnnData:

- ``X``: transformed values (float32), one column per panel channel, in panel order;
- ``layers["raw"]`` and ``layers["compensated"]`` (float32) as asked (both by default);
- ``var`` indexed by ``$PnN``: ``marker`` (the panel's name, used by gates), ``pns`` (the
  file's ``$PnS``, whatever it holds), both plain strings ("" where absent), ``range``
  ($PnR), ``transform_name``, ``transform`` and ``transform_params`` (JSON);
- ``obs``: ``qc_flow``, ``qc_margin``, ``qc_negative_scatter``, ``qc_pass`` (gating keeps
  ``qc_pass`` events; nothing is deleted); gate memberships are added later;
- ``uns["provenance"]``: file and panel digests, the spillover used and its source, QC
  parameters; ``uns["keywords"]``: only keywords safe to share (see :func:`shareable_keywords`);
  ``uns["acquisition_qc"]``: the time bins of the flow check; ``uns["fcs_notes"]``: what
  was unusual in reading the file, and ``uns["unlabelled_channels"]``: panel marker
  channels without a usable ``$PnS`` (both become QC warnings, :func:`reading_flags`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from immuno.contract.panels import Panel, load_panel
from immuno.cytometry.analysis.acquisition_qc import (
    FLAG_COLUMNS,
    AcquisitionQC,
    QCCollector,
    qc_settings,
)
from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.engine.event_pass import compensate_transform
from immuno.cytometry.engine.transforms import Transform, transform_from_spec
from immuno.cytometry.io.fcs import EventReader, FCSData
from immuno.cytometry.io.markers import check_markers, marker_error, marker_of
from immuno.cytometry.io.spillover import read_spillover_file, spillover_from_keywords
from immuno.cytometry.pipeline.events import LAYERS, TubeEvents
from immuno.cytometry.pipeline.tubes import fcs_dataset
from immuno.errors import UserError
from immuno.io import sha256_file

if TYPE_CHECKING:  # AnnData is built only for callers that ask for one
    import anndata as ad

#: technical keywords that cannot identify anyone; everything else needs the panel's allow-list
SAFE_KEYWORDS = frozenset({
    "$DATE", "$BTIM", "$ETIM", "$TIMESTEP", "$TOT", "$PAR", "$MODE",
    "$DATATYPE", "$BYTEORD", "$VOL", "$ABRT", "$LOST", "$SPILLOVER", "$SPILL", "$TR",
})
#: $PnN, $PnS (the markers, kept whatever they hold: gating needs them), range, bits ...
_SAFE_PARAMETER = re.compile(r"^\$P\d+[NSRBEGVLFOPT]$")
#: keywords that may hold names or free text: never copied unless a panel lists them.
#: $CYT and $CYTSN are free text in real files (a nickname, a serial number, a site name)
NEVER_BY_DEFAULT = frozenset({"$SRC", "$FIL", "$OP", "$SMNO", "$PROJ", "$COM", "$CYT", "$CYTSN", "$INST"})


def shareable_keywords(keywords: Mapping[str, str], allow: Iterable[str] = ()) -> dict[str, str]:
    """The keywords that may be copied into outputs.

    Standard technical keywords (date and times, layout, spillover and the ``$Pn*``
    parameter keywords, ``$PnS`` included whatever it holds) are kept; the free-text ones
    (``$SRC``, ``$FIL``, ``$OP``, ``$SMNO``, ``$PROJ``, ``$COM``, ``$CYT``, ``$CYTSN``,
    ``$INST``), other standard keywords and every vendor keyword are dropped unless
    ``allow`` (the panel's ``keywords_allow``) names them.
    """
    allowed = {a.strip().upper() for a in allow}
    return {k: v for k, v in sorted(keywords.items())
            if k in allowed or (k not in NEVER_BY_DEFAULT and (k in SAFE_KEYWORDS or _SAFE_PARAMETER.match(k)))}


def _as_panel(panel: Panel | str | os.PathLike[str]) -> Panel:
    return panel if isinstance(panel, Panel) else load_panel(panel)


def panel_channels(panel: Panel) -> list[dict[str, Any]]:
    """The panel's ``channels`` entries (channel, marker, transform)."""
    return [dict(c) for c in panel.get("channels", [])]


def missing_channels(fcs: FCSData, panel: Panel) -> list[str]:
    """Panel channels the FCS file does not have."""
    return [c["channel"] for c in panel_channels(panel) if c["channel"] not in fcs.channels]


def resolve_spillover(fcs: FCSData, panel: Panel, spill: Spillover | None = None) -> Spillover | None:
    """The matrix to compensate ``fcs`` with, as the panel's ``compensation`` says.

    ``spill`` (e.g. the batch's single-stain matrix) overrides the panel's source.

    Raises
    ------
    UserError
        If the panel wants a keyword the file lacks, a matrix file that is missing or
        bad, or single-stain compensation without the batch's matrix.
    """
    if spill is not None:
        return spill
    comp = panel.get("compensation") or {"source": "keyword"}
    source = comp.get("source", "keyword")
    if source == "none":
        return None
    if source == "keyword":
        found = spillover_from_keywords(fcs)
        if found is None:
            raise UserError.single(str(fcs.path), "has no $SPILLOVER/$SPILL keyword but panel "
                                   f"{panel.name!r} asks for compensation from the keyword",
                                   hint="Export the file with its compensation matrix, or set "
                                        "`compensation: {source: file, file: ...}` in the panel.")
        return found
    if source == "file":
        return read_spillover_file(Path(panel.path).parent / comp["file"])
    raise UserError.single(f"{panel.path}: compensation", f"panel {panel.name!r} uses single-stain "
                           f"compensation, so {fcs.path.name} needs the matrix computed from its batch's "
                           "single-stain controls and unstained tube",
                           hint="Compute the batch's matrix first (it is written with the batch results "
                                "as compensation.csv) and give it to this step.")


def _sha256_later(path: Path) -> Any:
    """The file's SHA-256 computed on another thread (hashing releases the GIL), so that
    reading the file twice costs no time beside the processing."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    future = pool.submit(sha256_file, path)
    pool.shutdown(wait=False)
    return future


def keep_layers(panel: Panel) -> tuple[str, ...]:
    """The copies of the events a panel keeps beside X (``keep_layers:``; none by default)."""
    return tuple(str(k) for k in panel.get("keep_layers") or ())


def _transform_specs(panel: Panel) -> list[tuple[str, Any, str] | None]:
    """Each panel channel's transform spec, with its name and where it is defined (None:
    untransformed); checks that every name is defined."""
    specs = panel.get("transforms", {}) or {}
    out: list[tuple[str, Any, str] | None] = []
    for entry in panel_channels(panel):
        tname = entry.get("transform")
        if tname is None:
            out.append(None)
            continue
        if tname not in specs:
            raise UserError.single(f"{panel.path}: channels", f"channel {entry['channel']} uses transform "
                                   f"{tname!r}, which `transforms:` does not define")
        out.append((str(tname), specs.get(tname), f"{panel.path}: transforms.{tname}"))
    return out


def _estimated(spec: Any) -> bool:
    return isinstance(spec, Mapping) and spec.get("w") == "estimate"


#: events read, QC-checked and transformed at a time (a few MB of the file)
BLOCK_ROWS = 65536


def read_tube(fcs_path: str | os.PathLike[str], panel: Panel | str | os.PathLike[str],
              spill: Spillover | None = None, sample_id: str | None = None, dataset: int | None = None,
              check_pns: bool = True, layers: Iterable[str] = ()) -> TubeEvents:
    """Read, QC-flag, compensate and transform one FCS file (see the module description).

    The file is read in blocks of :data:`BLOCK_ROWS` events: each block is checked by
    acquisition QC and compensated and transformed into its rows of X, so the raw events
    are never all in memory (a panel that estimates a logicle width from the events
    gating keeps reads the file twice: QC first, then the transform).

    Parameters
    ----------
    fcs_path, panel, spill, sample_id, dataset, check_pns
        As for :func:`ingest_sample`.
    layers
        Copies of the events to keep beside X: ``"raw"`` and/or ``"compensated"``.

    Returns
    -------
    TubeEvents

    Raises
    ------
    UserError
        As :func:`ingest_sample`.
    """
    panel = _as_panel(panel)
    wanted = tuple(layers)
    unknown = [k for k in wanted if k not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; expected some of {LAYERS}")
    reader = EventReader(fcs_path, dataset=fcs_dataset(panel, dataset))
    fcs = reader.fcs
    digest = _sha256_later(fcs.path)
    missing = missing_channels(fcs, panel)
    if missing:
        raise UserError.single(str(fcs.path), f"lacks channel(s) {', '.join(missing)} of panel "
                               f"{panel.name!r} (the file has: {', '.join(fcs.channels)})",
                               hint="Rename the channel in the panel's `channels:` or re-export the file.")
    wrong = marker_error(fcs, panel) if check_pns else None
    if wrong is not None:
        raise wrong
    matrix = resolve_spillover(fcs, panel, spill)
    entries = panel_channels(panel)
    names = [e["channel"] for e in entries]
    if matrix is not None:
        missing_spill = [c for c in matrix.channels if c not in fcs.channels]
        if missing_spill:
            raise UserError.single(str(fcs.path), f"spillover matrix ({matrix.source or 'given'}) names "
                                   f"channel(s) {', '.join(missing_spill)} that the data does not have "
                                   f"(channels: {', '.join(fcs.channels)})")
    specs = _transform_specs(panel)
    time_unit = "s" if fcs.keywords.get("$TIMESTEP", "").strip() else "Time units"
    settings = qc_settings(panel.get("qc"), names)
    # margins are judged on the values saturated detectors actually have after decoding
    collector = QCCollector(reader.n_events, fcs.channels, fcs.top_values() + 1, settings["time_channel"],
                            settings["margin"], settings["negative_scatter"], settings["check_channels"])
    n, cols, where = reader.n_events, [fcs.channel_index(c) for c in names], str(fcs.path)
    x = np.empty((n, len(names)), dtype=np.float32, order="F")
    kept: dict[str, np.ndarray] = {}
    if "raw" in wanted:
        kept["raw"] = np.empty((n, len(names)), dtype=np.float32)
    if "compensated" in wanted:
        kept["compensated"] = np.empty((n, len(names)), dtype=np.float32, order="F")
    estimate = [j for j, sp in enumerate(specs) if sp is not None and _estimated(sp[1])]
    fixed = [None if sp is None or _estimated(sp[1]) else transform_from_spec(sp[1], where=sp[2]) for sp in specs]

    def transform_block(start: int, block: np.ndarray, transforms: list[Transform | None]) -> None:
        stop = start + block.shape[0]
        compensate_transform(block, fcs.channels, matrix, names, transforms, out=x[start:stop],
                             compensated=kept["compensated"][start:stop] if "compensated" in kept else None,
                             where=where)
        if "raw" in kept:
            kept["raw"][start:stop] = block[:, cols]

    if not estimate:
        # one pass: each block is QC-checked, compensated and transformed
        for start, block in reader.blocks(BLOCK_ROWS):
            collector.add(start, block)
            transform_block(start, block, fixed)
        qc = collector.finish(settings["bin_events"], settings["k_mad"], settings["k_level"], time_unit)
        transforms = fixed
    else:
        # W is estimated on the compensated values of the events gating will see (not on
        # margin events or clogs), so QC and those columns come first
        columns = np.empty((n, len(estimate)), dtype=np.float32)
        for start, block in reader.blocks(BLOCK_ROWS):
            collector.add(start, block)
            compensate_transform(block, fcs.channels, matrix, [names[j] for j in estimate],
                                 out=columns[start:start + block.shape[0]], where=where)
        qc = collector.finish(settings["bin_events"], settings["k_mad"], settings["k_level"], time_unit)
        keep = qc.flags["qc_pass"].to_numpy()
        transforms = list(fixed)
        for k, j in enumerate(estimate):
            sp = specs[j]
            assert sp is not None
            column = columns[:, k]
            transforms[j] = transform_from_spec(sp[1], where=sp[2], data=column[keep] if keep.any() else column)
        del columns
        for start, block in reader.blocks(BLOCK_ROWS):
            transform_block(start, block, transforms)
    # plain strings ("" where absent): anndata writes them whatever the file holds
    var = pd.DataFrame({
        "marker": pd.Series([marker_of(e) or "" for e in entries], dtype=object),
        "pns": pd.Series([fcs.markers[j] or "" for j in cols], dtype=object),
        "range": [float(fcs.ranges[j]) for j in cols],
        "transform_name": [e.get("transform") or "" for e in entries],
        "transform": [tf.kind if tf is not None else "none" for tf in transforms],
        "transform_params": [json.dumps(tf.params if tf is not None else {}, sort_keys=True) for tf in transforms],
    })
    var.index = pd.Index(names, name="channel")
    uns: dict[str, Any] = {
        "provenance": {
            "file": fcs.path.name, "file_sha256": digest.result(), "fcs_version": fcs.version,
            "panel": panel.name, "panel_version": panel.version, "panel_sha256": panel.sha256,
            "spillover_source": matrix.source if matrix is not None else "none",
            "spillover_channels": list(matrix.channels) if matrix is not None else [],
            "spillover_matrix": matrix.matrix.tolist() if matrix is not None else [],
            "acquisition_qc": json.dumps(qc.params, sort_keys=True),
            "n_events": int(fcs.n_events),
            "fcs_dataset": int(fcs.dataset), "fcs_datasets": int(fcs.n_datasets),
        },
        "fcs_notes": list(fcs.notes),
        "unlabelled_channels": (check_markers(fcs.channels, fcs.markers, entries).unlabelled
                                if check_pns else []),
        "keywords": shareable_keywords(fcs.keywords, panel.get("keywords_allow") or []),
    }
    if sample_id is not None:
        uns["sample_id"] = str(sample_id)
    return TubeEvents(x=x, var=var, qc=qc, uns=uns, transforms=dict(zip(names, transforms, strict=True)),
                      spill=matrix, layers=kept)


def ingest_sample(fcs_path: str | os.PathLike[str], panel: Panel | str | os.PathLike[str],
                  spill: Spillover | None = None, sample_id: str | None = None,
                  dataset: int | None = None, check_pns: bool = True,
                  layers: Iterable[str] = LAYERS) -> ad.AnnData:
    """Read, compensate, QC-flag and transform one FCS file, as an AnnData.

    Parameters
    ----------
    fcs_path
        The FCS file.
    panel
        Its panel (a loaded :class:`~immuno.contract.panels.Panel` or the YAML path).
    spill
        A spillover matrix to use instead of the panel's source (the batch's matrix from
        single stains).
    sample_id
        Recorded in ``uns["sample_id"]``.
    dataset
        Which data set of a multi-data-set file to read (default: the panel's
        ``dataset``; a file with several data sets and no choice is refused).
    check_pns
        Compare the panel's markers with the file's ``$PnS`` (a mismatch is an error).
        Off for compensation controls, whose ``$PnS`` names the one stain of the tube.
    layers
        The copies of the events kept beside X: ``"raw"`` and ``"compensated"`` by
        default (the pipeline keeps what the panel's ``keep_layers:`` says).

    Returns
    -------
    anndata.AnnData
        Events x panel channels (see the module description).

    Raises
    ------
    UserError
        Unreadable file, several data sets and none chosen, panel channel missing from
        the file (naming the channels the file has), a panel marker that the file's
        ``$PnS`` contradicts, unknown or singular spillover matrix, bad transform.
    """
    return read_tube(fcs_path, panel, spill, sample_id, dataset, check_pns, layers).to_anndata()


def acquisition_qc_of(adata: ad.AnnData | TubeEvents) -> AcquisitionQC:
    """The acquisition QC recorded in an ingested sample (for :func:`qc_rows`)."""
    if isinstance(adata, TubeEvents):
        return adata.qc
    flags = adata.obs[[*FLAG_COLUMNS, "qc_pass"]].reset_index(drop=True)
    bins = adata.uns.get("acquisition_qc", {}).get("bins", pd.DataFrame())
    params = json.loads(adata.uns.get("provenance", {}).get("acquisition_qc", "{}"))
    return AcquisitionQC(flags=flags, bins=pd.DataFrame(bins), params=params)


def reading_flags(adata: ad.AnnData | TubeEvents, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """QC warning flags from reading the file: each reading note (offsets resolved,
    word-stored bit widths, non-UTF-8 TEXT ...) and the panel marker channels whose
    ``$PnS`` is empty, so their marker could not be checked."""
    flags = [{**base, "target": "fcs_file", "flag": "fcs_reading_note", "severity": "warning", "reason": note}
             for note in adata.uns.get("fcs_notes", [])]
    unlabelled = [str(c) for c in adata.uns.get("unlabelled_channels", [])]
    if len(unlabelled):
        flags.append({**base, "target": "markers", "flag": "markers_unchecked", "severity": "warning",
                      "reason": f"the file has no $PnS for {', '.join(unlabelled)}: the panel's markers "
                                "there could not be checked against the file"})
    return flags
