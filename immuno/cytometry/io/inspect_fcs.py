"""What a person writing a panel needs to know about an FCS file (``immuno cytometry inspect``).

:func:`describe_fcs` reads only HEADER and TEXT: version, instrument, event count, the
data sets the file holds, every channel with ``$PnN``, ``$PnS``, range and bits, the
compensation keywords and the channels they cover, and what was unusual in reading it.
:func:`starter_channels` turns one data set into the ``channels:`` block of a new panel:
marker names come from informative ``$PnS``, scatter channels get the ``scatter``
transform, Time none, every other channel ``fluor``.

The description is printed on the terminal for the person at the instrument; it is not
written into any result (the instrument keyword may hold free text).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from immuno.cytometry.io.fcs import DataSetInfo, FCSData, list_datasets, read_fcs_header
from immuno.cytometry.io.markers import NO_MARKER_WORD, WORD_SPLIT, informative, normalise
from immuno.cytometry.io.spill_keywords import KeywordMatrix, keyword_matrices
from immuno.errors import UserError

__all__ = ["FileDescription", "describe_fcs", "format_description", "starter_channels"]

_SCATTER = re.compile(r"^(FSC|SSC|FS|SS)(?![A-Z])", re.IGNORECASE)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.+\-]")


@dataclass
class FileDescription:
    """One data set of an FCS file, described from its HEADER and TEXT.

    Attributes
    ----------
    header
        The data set's keywords and channels (no events).
    datasets
        Every data set of the file.
    spill
        Each compensation keyword present: the matrix it holds, or why it cannot be used.
    """

    header: FCSData
    datasets: list[DataSetInfo]
    spill: list[tuple[str, KeywordMatrix | UserError]] = field(default_factory=list)


def describe_fcs(path: str | os.PathLike[str], dataset: int | None = None) -> list[FileDescription]:
    """Describe an FCS file: one :class:`FileDescription` per data set (or the chosen one).

    Raises
    ------
    UserError
        Unreadable, truncated or non-FCS file, or a ``dataset`` the file does not have.
    """
    path = Path(path)
    sets = list_datasets(path)
    chosen = [dataset] if dataset is not None else [s.index for s in sets]
    out = []
    for index in chosen:
        header = read_fcs_header(path, dataset=index)
        out.append(FileDescription(header=header, datasets=sets, spill=keyword_matrices(header)))
    return out


def _bits(fcs: FCSData, i: int) -> str:
    kind = fcs.keywords.get("$DATATYPE", "").strip().upper()
    if kind in ("F", "D"):
        return "float32" if kind == "F" else "float64"
    return fcs.keywords.get(f"$P{i + 1}B", "").strip()


def format_description(desc: FileDescription) -> str:
    """The description as the terminal shows it."""
    fcs = desc.header
    kw = fcs.keywords
    lines = [f"{fcs.path}"]
    if len(desc.datasets) > 1:
        lines.append(f"  data set {fcs.dataset} of {len(desc.datasets)} ($NEXTDATA); choose with --dataset N:")
        lines += [f"    {d.describe()}" for d in desc.datasets]
    instrument = kw.get("$CYT", "").strip() or "not stated ($CYT absent)"
    datatype = {"F": "float32", "D": "float64", "I": "integer"}.get(kw.get("$DATATYPE", "").strip().upper(), "?")
    lines.append(f"  FCS {fcs.version}, instrument: {instrument}, {fcs.n_events} events, "
                 f"{fcs.n_channels} channels, {datatype} data")
    rows = [("#", "$PnN", "$PnS", "$PnR", "bits")]
    rows += [(str(i + 1), c, m or "-", f"{r:g}", _bits(fcs, i))
             for i, (c, m, r) in enumerate(zip(fcs.channels, fcs.markers, fcs.ranges, strict=True))]
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not desc.spill:
        lines.append("  compensation: no $SPILLOVER/$SPILL/$COMP/$DFC keyword")
    for n, (key, found) in enumerate(desc.spill):
        use = "used by `compensation: {source: keyword}`" if n == 0 else "not used (a keyword above wins)"
        if isinstance(found, UserError):
            lines.append(f"  compensation {key}: cannot be used: {found.problems[0].what}")
        else:
            lines.append(f"  compensation {key}: {len(found.channels)} channels ({', '.join(found.channels)}); {use}")
    unlabelled = [c for c, m in zip(fcs.channels, fcs.markers, strict=True) if not informative(m, c)]
    if len(unlabelled) == fcs.n_channels:
        lines.append("  markers: no $PnS names a marker (empty, or the channel/fluorochrome repeated): "
                     "panel markers cannot be checked against this file")
    lines += [f"  note: {n}" for n in fcs.notes]
    return "\n".join(lines)


def _marker_name(pns: str | None, channel: str) -> str | None:
    if not informative(pns, channel):
        return None
    words = [w for w in WORD_SPLIT.split(str(pns)) if normalise(w) and not NO_MARKER_WORD.match(normalise(w))]
    name = _NAME_CHARS.sub("", "_".join(words))
    return name if name and re.match(r"^[A-Za-z0-9_]", name) else None


def starter_channels(fcs: FCSData) -> str:
    """A ``channels:`` block (and the transforms it names) to start a panel from.

    Markers are guessed from ``$PnS`` (its words that name no fluorochrome, detector or
    filter); every guess and every blank must be checked by the person writing the panel.
    """
    lines = ["channels:"]
    for channel, pns in zip(fcs.channels, fcs.markers, strict=True):
        is_time = channel.strip().lower().startswith("time")
        transform = "null" if is_time else ("scatter" if _SCATTER.match(channel) else "fluor")
        marker = None if is_time or transform == "scatter" else _marker_name(pns, channel)
        shown = "null" if marker is None else (marker if re.fullmatch(r"[A-Za-z0-9_.+\-]+", marker) else f'"{marker}"')
        note = f"  # $PnS: {pns}" if pns else ""
        if marker is None and transform == "fluor":
            note = f"  # fill in the marker{f' ($PnS: {pns})' if pns else ''}, or delete this line if unused"
        lines.append(f"  - {{channel: {_quote(channel)}, marker: {shown}, transform: {transform}}}{note}")
    top = int(max(fcs.ranges.max(), 1)) if fcs.n_channels else 262144
    lines += ["", "transforms:", f"  scatter: {{type: linear, t: {top}, a: 0}}",
              f"  fluor: {{type: logicle, t: {top}, w: estimate, m: 4.5, a: 0}}"]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_.+\-]+", text) else '"' + text.replace('"', '\\"') + '"'
