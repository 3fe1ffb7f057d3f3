"""One FCS file -> one per-event AnnData, ready for gating.

``ingest_sample`` reads the file (the panel's data set of a multi-data-set file), checks
it has every channel the panel names and that its ``$PnS`` agree with the panel's
markers, compensates it (matrix from the file's keyword, a matrix file, or the batch's
single-stain matrix), flags events by acquisition QC, and applies the panel's transforms:

- ``X``: transformed values (float32), one column per panel channel, in panel order;
- ``layers["raw"]`` and ``layers["compensated"]`` (float32);
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
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from immuno.cytometry.acquisition_qc import FLAG_COLUMNS, AcquisitionQC, acquisition_qc, qc_settings
from immuno.cytometry.compensation import (
    Spillover,
    read_spillover_file,
    spillover_from_keywords,
)
from immuno.cytometry.event_pass import compensate_columns
from immuno.cytometry.fcs import FCSData, read_fcs
from immuno.cytometry.markers import check_markers, marker_error, marker_of
from immuno.cytometry.transforms import transform_from_spec
from immuno.cytometry.tubes import fcs_dataset
from immuno.errors import UserError
from immuno.io import sha256_file
from immuno.panels import Panel, load_panel

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


def ingest_sample(fcs_path: str | os.PathLike[str], panel: Panel | str | os.PathLike[str],
                  spill: Spillover | None = None, sample_id: str | None = None,
                  dataset: int | None = None, check_pns: bool = True) -> ad.AnnData:
    """Read, compensate, QC-flag and transform one FCS file.

    Parameters
    ----------
    fcs_path
        The FCS file.
    panel
        Its panel (a loaded :class:`~immuno.panels.Panel` or the YAML path).
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
    panel = _as_panel(panel)
    fcs = read_fcs(fcs_path, dataset=fcs_dataset(panel, dataset))
    assert fcs.events is not None
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
    time_unit = "s" if fcs.keywords.get("$TIMESTEP", "").strip() else "Time units"
    # margins are judged on the values saturated detectors actually have after decoding
    qc = acquisition_qc(fcs.events, fcs.channels, fcs.top_values() + 1, **qc_settings(panel.get("qc"), names),
                        time_unit=time_unit)
    cols = [fcs.channel_index(c) for c in names]
    raw = fcs.events[:, cols]
    if matrix is not None:
        missing_spill = [c for c in matrix.channels if c not in fcs.channels]
        if missing_spill:
            raise UserError.single(str(fcs.path), f"spillover matrix ({matrix.source or 'given'}) names "
                                   f"channel(s) {', '.join(missing_spill)} that the data does not have "
                                   f"(channels: {', '.join(fcs.channels)})")
    # compensated once, in one pass over the file (only the panel's and the matrix's columns)
    comp = compensate_columns(fcs.events, fcs.channels, matrix, names, where=str(fcs.path))
    x = np.empty_like(comp)
    specs = panel.get("transforms", {}) or {}
    var_rows = []
    keep = qc.flags["qc_pass"].to_numpy()
    for j, entry in enumerate(entries):
        tname = entry.get("transform")
        if tname is not None and tname not in specs:
            raise UserError.single(f"{panel.path}: channels", f"channel {entry['channel']} uses transform "
                                   f"{tname!r}, which `transforms:` does not define")
        where = f"{panel.path}: transforms.{tname}"
        column = np.ascontiguousarray(comp[:, j])
        # W is estimated on the events gating will see, not on margin events or clogs
        tf = transform_from_spec(specs.get(tname), where=where, data=column[keep] if keep.any() else column) if tname else None
        # transformed once per channel
        x[:, j] = tf.apply(column) if tf is not None else column
        # plain strings ("" where absent): anndata writes them whatever the file holds
        var_rows.append({"marker": marker_of(entry) or "", "pns": fcs.markers[cols[j]] or "",
                         "range": float(fcs.ranges[cols[j]]), "transform_name": tname or "",
                         "transform": tf.kind if tf is not None else "none",
                         "transform_params": json.dumps(tf.params if tf is not None else {}, sort_keys=True)})
    var = pd.DataFrame(var_rows, index=pd.Index(names, name="channel"))
    var["marker"] = var["marker"].astype(object)
    var["pns"] = var["pns"].astype(object)
    obs = qc.flags.copy()
    obs.index = pd.RangeIndex(len(obs), name="event").astype(str)
    adata = ad.AnnData(X=x, obs=obs, var=var, layers={"raw": raw, "compensated": comp})
    adata.uns["provenance"] = {
        "file": fcs.path.name, "file_sha256": sha256_file(fcs.path), "fcs_version": fcs.version,
        "panel": panel.name, "panel_version": panel.version, "panel_sha256": panel.sha256,
        "spillover_source": matrix.source if matrix is not None else "none",
        "spillover_channels": list(matrix.channels) if matrix is not None else [],
        "spillover_matrix": matrix.matrix.tolist() if matrix is not None else [],
        "acquisition_qc": json.dumps(qc.params, sort_keys=True),
        "n_events": int(fcs.n_events),
        "fcs_dataset": int(fcs.dataset), "fcs_datasets": int(fcs.n_datasets),
    }
    adata.uns["fcs_notes"] = list(fcs.notes)
    adata.uns["unlabelled_channels"] = (check_markers(fcs.channels, fcs.markers, entries).unlabelled
                                        if check_pns else [])
    adata.uns["keywords"] = shareable_keywords(fcs.keywords, panel.get("keywords_allow") or [])
    adata.uns["acquisition_qc"] = {"bins": qc.bins.reset_index(drop=True)}
    if sample_id is not None:
        adata.uns["sample_id"] = str(sample_id)
    return adata


def acquisition_qc_of(adata: ad.AnnData) -> AcquisitionQC:
    """The acquisition QC recorded in an ingested sample (for :func:`qc_rows`)."""
    flags = adata.obs[[*FLAG_COLUMNS, "qc_pass"]].reset_index(drop=True)
    bins = adata.uns.get("acquisition_qc", {}).get("bins", pd.DataFrame())
    params = json.loads(adata.uns.get("provenance", {}).get("acquisition_qc", "{}"))
    return AcquisitionQC(flags=flags, bins=pd.DataFrame(bins), params=params)


def reading_flags(adata: ad.AnnData, base: Mapping[str, Any]) -> list[dict[str, Any]]:
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
