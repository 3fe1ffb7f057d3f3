"""Gating template files: what kind a file is, and what a FlowJo workspace states itself.

A lab's template is a FlowJo 10 workspace (``.wsp``) or a GatingML 2.0 file. Other files
that look similar are refused with one line saying what they are and what to export
instead: a BD FACSDiva experiment export (``bdfacs`` XML), a FlowJo 9 (or older)
workspace, GatingML 1.5, anything else.

A FlowJo workspace also records, per sample, the event count FlowJo computed for each
population (``count=`` attributes). :func:`stored_counts` reads them, so counts computed
here can be compared with FlowJo's own even when the FCS files are not at hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from immuno.errors import UserError

__all__ = ["StoredSample", "sniff_template", "stored_counts"]

_ROOT = re.compile(r"<\s*([A-Za-z_][\w:.\-]*)([^>]*)>")
_ATTR = re.compile(r'([\w:.\-]+)\s*=\s*"([^"]*)"')
_EXPORT = ("Export the gates as GatingML 2.0, or open the file in FlowJo 10 and save a workspace (.wsp), "
           "then name that file.")


def _root_element(head: str) -> tuple[str, dict[str, str]]:
    """The first element's name and attributes (``<?xml`` and ``<!--`` never match)."""
    m = _ROOT.search(head)
    return (m.group(1), dict(_ATTR.findall(m.group(2)))) if m else ("", {})


def sniff_template(path: str | os.PathLike[str]) -> str:
    """The kind of a template file: ``"flowjo"`` (FlowJo 10 workspace) or ``"gatingml"``.

    Raises
    ------
    UserError
        Missing file, or one line saying what the file is and why it is unsupported.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError.single(str(p), "gating template not found")
    with open(p, "rb") as fh:
        head = fh.read(65536).decode("latin-1")
    root, attrs = _root_element(head)
    local = root.split(":")[-1]
    if local == "bdfacs":
        raise UserError.single(str(p), f"is a BD FACSDiva experiment export (bdfacs XML, {attrs.get('version', 'version ?')}), "
                               "not a gating template; it is not supported", hint=_EXPORT)
    if local == "Workspace":
        version = attrs.get("flowJoVersion", "")
        major = re.match(r"\s*(\d+)", version)
        ws_version = re.match(r"\s*(\d+)", attrs.get("version", ""))
        if (major and int(major.group(1)) < 10) or (not major and ws_version and int(ws_version.group(1)) < 20):
            shown = f"FlowJo {version}" if version else f"workspace version {attrs.get('version')}"
            raise UserError.single(str(p), f"is a FlowJo 9 or older workspace ({shown}), which is not "
                                   "supported: only FlowJo 10 workspaces are read",
                                   hint="Open it in FlowJo 10 and save it again (File > Save As .wsp).")
        return "flowjo"
    if local == "Gating-ML":
        namespaces = " ".join(v for k, v in attrs.items() if k.startswith("xmlns"))
        if "v2.0" in namespaces:
            return "gatingml"
        raise UserError.single(str(p), "is GatingML but not version 2.0 (namespaces: "
                               f"{namespaces or 'none'}); it is not supported", hint=_EXPORT)
    what = f"an XML document with root element <{root}>" if root else "not an XML document"
    raise UserError.single(str(p), f"is {what}, not a FlowJo 10 workspace or GatingML 2.0 file; "
                           "it is not supported", hint=_EXPORT)


@dataclass(frozen=True)
class StoredSample:
    """What a FlowJo workspace states about one sample.

    Attributes
    ----------
    name
        The sample's name in the workspace (usually its FCS file name).
    events
        FlowJo's event count of the whole sample.
    counts
        Population path (names from the top, e.g. ``("singlet", "live")``) -> count.
    """

    name: str
    events: int
    counts: dict[tuple[str, ...], int]


def stored_counts(path: str | os.PathLike[str]) -> list[StoredSample]:
    """The population counts a FlowJo workspace stores for each of its samples.

    Raises
    ------
    UserError
        When the file is not a readable FlowJo 10 workspace.
    """
    from lxml import etree  # lxml: only when a FlowJo workspace is read

    p = Path(path)
    if sniff_template(p) != "flowjo":
        raise UserError.single(str(p), "only FlowJo workspaces store population counts")
    try:
        root = etree.parse(str(p), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except etree.XMLSyntaxError as exc:
        raise UserError.single(str(p), f"not a readable FlowJo workspace: {exc}") from None
    out = []
    for node in root.iter("SampleNode"):
        counts: dict[tuple[str, ...], int] = {}
        _walk(node, (), counts)
        events = node.get("count", "")
        out.append(StoredSample(str(node.get("name")), int(events) if events.isdigit() else -1, counts))
    return out


def _walk(elem: object, prefix: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> None:
    for sub in elem.findall("Subpopulations/Population"):  # type: ignore[attr-defined]
        key = (*prefix, str(sub.get("name")))
        if sub.get("count", "").strip().isdigit():
            counts[key] = int(sub.get("count"))
        _walk(sub, key, counts)
