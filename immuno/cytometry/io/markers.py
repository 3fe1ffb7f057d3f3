"""Markers: the panel's names for the stains, checked against each file's ``$PnS``.

A panel names the marker read in each channel; the file's ``$PnS`` says what the
cytometer operator typed for that channel. When the two disagree, the panel is probably
wrong for this file (two channels swapped when a panel was copied turns Th1 into Th2
with every other check green), so the sample must not be gated.

A panel channel may list other spellings of its marker after ``|``::

    - {channel: FITC-A, marker: "IFNg|IFN-gamma|IFNG", transform: fluor}

The first name is the marker's name in the panel (gates, populations, outputs); every
name is accepted in ``$PnS``. Names are compared without case, punctuation or spaces
(``IFN-gamma`` = ``IFN gamma`` = ``ifngamma``; Greek letters count as their names, so
``IFN-γ`` = ``IFN-gamma``), and a ``$PnS`` that also names the fluorochrome or the
clone (``CD3-FITC``, ``CD4 BV605``, ``IFNg (B27)``) matches when one of its words, or
several consecutive ones, is one of the names.

Many instruments fill ``$PnS`` themselves when the operator typed no marker: with the
channel's name (MACSQuant, Accuri, Stratedigm), the fluorochrome (``FITC``, ``GFP-A``)
or the laser and filter (``355-448/59``). Such a ``$PnS`` says nothing about the marker:
the channel counts as unlabelled (a QC warning), not as a mismatch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from immuno.errors import Problem, UserError

__all__ = ["MarkerCheck", "check_markers", "informative", "marker_error", "marker_of", "marker_problems", "normalise",
           "pns_matches", "spellings"]

_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "κ": "kappa", "λ": "lambda",
          "µ": "mu", "μ": "mu", "ε": "epsilon"}
WORD_SPLIT = re.compile(r"[\s_/,;:()\[\]{}\-]+")
#: words of a $PnS that name no marker: fluorochromes and dyes, detectors, lasers and
#: filters, scatter, Time and pulse-shape words (compared after :func:`normalise`)
NO_MARKER_WORD = re.compile(
    r"^(\d+|[a-z]|(fl|bl|yl|vl|rl|ul|uv|v|b|y|r|g|ch)\d{1,2}[a-z]?|fitc|pe|apc|percp|ecd|pc\d*|rd\d|cy\d+|bv\d+|buv\d+|bb\d+|bue\d+|"
    r"af\d+|ax\d+|alexa|alexafluor|fluor(tm)?|efluor\d*|qdot\d*|v\d{3}|[ey]?gfp|yfp|cfp|rfp|mcherry|"
    r"dapi|pi|7aad|aad|amcyan|pac(ific)?(blue|blu|orange)|texasred|tr|dazzle\d*|cf\d+|spark\w*|fire\d*|"
    r"h7|r700|violet\d*|blue\d*|red\d*|yellow\d*|green\d*|uv\d*|nir|fsc|ssc|fs|ss|sc|time|lsw|msw|"
    r"pulse|width|height|area|peak|lin|log|int|linh|lina|logh|loga|event|count|computed|hdr|sec|fmo|blank|empty|none|unstained|isotype|na|unused\d*)$")


def normalise(text: str) -> str:
    """A marker name reduced for comparison: no case, accents, punctuation or spaces."""
    text = "".join(_GREEK.get(ch, ch) for ch in str(text).casefold())
    text = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in text if ch.isalnum() and ch.isascii())


def spellings(marker: str | None) -> tuple[str, ...]:
    """Every name of a panel channel's marker: ``"IFNg|IFN-gamma"`` -> ``("IFNg", "IFN-gamma")``."""
    if marker is None:
        return ()
    return tuple(part.strip() for part in str(marker).split("|"))


def marker_of(entry: Mapping[str, Any]) -> str | None:
    """The marker's name in the panel (the first of its spellings), or None (scatter, Time)."""
    names = spellings(entry.get("marker"))
    return names[0] if names else None


def pns_matches(pns: str, names: Sequence[str]) -> bool:
    """True when the file's ``$PnS`` names one of ``names`` (see the module description)."""
    wanted = {normalise(n) for n in names if normalise(n)}
    whole = normalise(pns)
    if whole in wanted:
        return True
    words = [normalise(w) for w in WORD_SPLIT.split(pns) if normalise(w)]
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            if "".join(words[i:j]) in wanted:
                return True
    return False


def informative(pns: str | None, channel: str) -> bool:
    """False when a ``$PnS`` only repeats the channel, a fluorochrome, a detector or a
    filter (instruments write those when no marker was typed)."""
    if pns is None or not normalise(pns):
        return False
    if normalise(pns) == normalise(channel):
        return False
    words = [normalise(w) for w in WORD_SPLIT.split(pns)]
    return any(w and not NO_MARKER_WORD.match(w) for w in words)


@dataclass
class MarkerCheck:
    """The outcome of comparing a panel's markers with one file's ``$PnS``.

    Attributes
    ----------
    mismatches
        One message per channel whose ``$PnS`` names another marker.
    unlabelled
        Panel marker channels whose ``$PnS`` is empty or names no marker (not checked).
    """

    mismatches: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mismatch."""
        return not self.mismatches


def check_markers(channels: Sequence[str], pns: Sequence[str | None],
                  panel_channels: Sequence[Mapping[str, Any]]) -> MarkerCheck:
    """Compare each panel channel's marker with the file's ``$PnS`` of that channel.

    Parameters
    ----------
    channels, pns
        The file's ``$PnN`` and ``$PnS`` (None where absent).
    panel_channels
        The panel's ``channels:`` entries.

    Returns
    -------
    MarkerCheck
        Each mismatch names the channel, the panel's marker (with its other spellings),
        the file's ``$PnS`` and, when that ``$PnS`` is another marker of the panel, the
        channel the panel reads that marker in (a swap).
    """
    out = MarkerCheck()
    by_channel = dict(zip(channels, pns, strict=True))
    others = [(marker_of(e), spellings(e.get("marker")), str(e["channel"])) for e in panel_channels
              if e.get("marker")]
    for entry in panel_channels:
        names = spellings(entry.get("marker"))
        channel = str(entry["channel"])
        if not names or channel not in by_channel:
            continue
        label = by_channel[channel]
        if label is not None and pns_matches(label, names):
            continue
        if label is None or not informative(label, channel):
            out.unlabelled.append(channel)
            continue
        shown = names[0] + (f" (also accepted: {', '.join(names[1:])})" if len(names) > 1 else "")
        swap = [f"{m} (read in {c})" for m, s, c in others if c != channel and pns_matches(label, s)]
        why = (f"that is the panel's marker {swap[0]}: channels swapped?" if swap else
               f"if {label.strip()!r} is another name of {names[0]}, add it to the panel as "
               f"marker: \"{'|'.join([*names, label.strip()])}\"")
        out.mismatches.append(f"channel {channel}: panel marker {shown}, file marker ($PnS) "
                              f"{label.strip()!r}; {why}")
    return out


def marker_problems(panel_channels: Sequence[Mapping[str, Any]], where: str,
                    lines: Mapping[int, int] | None = None) -> list[Problem]:
    """Mistakes in the panel's marker names: empty spellings, a spelling claimed by two
    markers, the same marker in two channels.

    Parameters
    ----------
    panel_channels
        The panel's ``channels:`` entries.
    where
        The panel file.
    lines
        Optional entry index -> line in the panel file.
    """
    problems: list[Problem] = []
    owner: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(panel_channels):
        names = spellings(entry.get("marker"))
        if not names:
            continue
        line = (lines or {}).get(i)
        loc = f"{where}: line {line}: channels[{i}] ({entry.get('channel')})" if line else \
            f"{where}: channels[{i}] ({entry.get('channel')})"
        if any(not normalise(n) for n in names):
            problems.append(Problem(loc, f"marker {entry.get('marker')!r} has an empty name between '|' "
                                    "(expected NAME|OTHER-SPELLING|...)"))
            continue
        for n in names:
            key = normalise(n)
            if key in owner and owner[key][0] != str(entry["channel"]):
                other_channel, other_marker = owner[key]
                what = (f"marker {names[0]!r} is also read in channel {other_channel}" if other_marker == names[0]
                        else f"spelling {n!r} is also a name of marker {other_marker!r} (channel "
                             f"{other_channel}); each spelling may name one marker only")
                problems.append(Problem(loc, what))
            owner.setdefault(key, (str(entry["channel"]), names[0]))
    return problems


def marker_error(fcs: Any, panel: Any) -> UserError | None:
    """The panel-versus-``$PnS`` mismatches of a file as one error (None when they agree)."""
    found = check_markers(fcs.channels, fcs.markers, panel.get("channels") or [])
    if found.ok:
        return None
    return UserError([Problem(str(fcs.path), m) for m in found.mismatches],
                     hint=f"Check the channels of panel {panel.name!r} ({panel.path}) against the file: "
                          f"`immuno cytometry inspect {fcs.path.name}` lists its $PnN and $PnS.")
