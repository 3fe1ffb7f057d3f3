"""Read any supported plate export, choosing the reader from the file's content.

The file name never decides: a ``.csv`` can be an xPONENT, Intelliflex, MSD or CFX
export, a ``.txt`` a QuantStudio or Methodical Mind export, an ``.xlsx`` a Bio-Plex, MSD,
QuantStudio or CFX workbook (recognised by the tables its sheets hold), a zip an RDML
file. A folder is a LEGENDplex plate when it holds per-well FCS files (bead arrays read
on a flow cytometer, :mod:`~immuno.chemokines.io.legendplex`; they need the panel's
``beads:`` section). What is not a plate export (a single FCS file, a bead map, an
unanalysed run file) gets one clear line saying what it is and what was expected.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.chemokines.io import (
    bioplex,
    bioplex_xml,
    cfx,
    intelliflex,
    legendplex,
    msd,
    quantstudio,
    rdml,
    xponent,
)
from immuno.chemokines.io.layout import apply_layout, read_layout
from immuno.chemokines.io.plate import PlateData
from immuno.errors import UserError

SUPPORTED = (
    "Luminex xPONENT CSV (FLEXMAP 3D, MAGPIX, LX200, Intelliflex)",
    "Luminex Intelliflex native CSV",
    "Bio-Plex Manager Excel (.xls/.xlsx)",
    "Bio-Plex Manager XML",
    "MSD Discovery Workbench CSV/xlsx",
    "MSD Methodical Mind text",
    "Bio-Rad CFX CSV and tables (.xlsx)",
    "QuantStudio / ViiA 7 text and Excel, Design & Analysis Excel",
    "RDML (plain or zipped)",
    "LEGENDplex plate: a folder of per-well FCS files (with a panel's beads: section)",
)
_HINT = "Export the plate from the instrument software in one of these formats (immuno chemokines formats)."


def _unsupported(path: Path, what: str) -> UserError:
    return UserError.single(str(path), what, hint=_HINT)


def _classify_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        raise _unsupported(
            path, "a damaged zip container; expected an RDML file or an Excel workbook"
        ) from None
    if any(n.startswith("xl/workbook") for n in names) and not any(
        n.startswith("apldbio/") for n in names
    ):
        return "excel"
    if rdml.sniff_rdml(path):
        return "rdml"
    if any(n.lower().startswith("apldbio/sds/") for n in names):
        raise _unsupported(
            path,
            "an Applied Biosystems run file (.eds) holds the raw run without its analysis "
            "(no Ct values); expected the run's results exported as text or Excel from the "
            "QuantStudio / 7500 software",
        )
    raise _unsupported(path, "a zip container without an RDML document; expected an RDML file")


def _classify_excel(path: Path, sheets: dict[str, pd.DataFrame]) -> str:
    if bioplex.sniff_sheets(sheets):
        return "bioplex"
    if msd.sniff_sheets(sheets):
        return "msd"
    if quantstudio.sniff_sheets(sheets):
        return "quantstudio"
    if cfx.sniff_cfx_sheets(sheets):
        return "cfx"
    names = ", ".join(repr(n) for n in sheets)
    raise _unsupported(
        path,
        f"an Excel workbook (sheets {names}) with no plate table; expected a Bio-Plex analyte "
        "table (Type, Well, FI), an MSD table (Sample, Assay, Well), a QuantStudio results table "
        "(Well, Well Position, Target Name) or a CFX table (Well, Fluor, Target, Content)",
    )


def detect_format(path: str | Path, _cache: dict[str, Any] | None = None) -> str:
    """The export format of a file from its content: ``xponent``, ``intelliflex``,
    ``bioplex``, ``bioplex_xml``, ``msd``, ``methodical_mind``, ``cfx``, ``quantstudio``
    ``rdml``, or ``legendplex`` for a folder of per-well FCS files.

    Raises
    ------
    UserError
        When the file is missing, unreadable or of no supported format (with what it
        looks like when that is known, e.g. a LEGENDplex FCS file).
    """
    path = Path(path)
    if path.is_dir():
        if legendplex.sniff_folder(path):
            return "legendplex"
        raise _unsupported(
            path,
            "a folder without FCS files; a folder is read as a LEGENDplex plate (per-well FCS)",
        )
    if not path.is_file():
        raise UserError.single(str(path), "file not found")
    if path.stat().st_size == 0:
        raise UserError.single(str(path), "the file is empty; expected a plate export")
    with open(path, "rb") as fh:
        raw = fh.read(65536)
    if raw.startswith(b"FCS2.") or raw.startswith(b"FCS3."):
        raise _unsupported(
            path,
            "a flow cytometry (FCS) file, e.g. LEGENDplex beads: a LEGENDplex plate is read as "
            "the folder of its per-well FCS files, with a plate layout and a panel whose beads: "
            "section names the bead populations; expected a plate export or such a folder",
        )
    excel = raw.startswith(b"\xd0\xcf\x11\xe0")
    if raw.startswith(b"PK"):
        kind = _classify_zip(path)
        if kind == "rdml":
            return "rdml"
        excel = True
    if excel:
        sheets = bioplex.read_workbook(path)
        if _cache is not None:
            _cache["sheets"] = sheets
        return _classify_excel(path, sheets)
    head = raw.decode("utf-8-sig", errors="replace")
    start = head.lstrip()[:400]
    if start.startswith("<"):
        if "BioPlexManager" in start:
            return "bioplex_xml"
        if "<rdml" in head[:4000].lower():
            return "rdml"
        raise _unsupported(path, "an XML document that is neither Bio-Plex Manager XML nor RDML")
    for fmt, sniff in (
        ("xponent", xponent.sniff),
        ("intelliflex", intelliflex.sniff),
        ("msd", msd.sniff),
        ("methodical_mind", msd.sniff_methodical_mind),
        ("cfx", cfx.sniff_cfx),
        ("quantstudio", quantstudio.sniff),
    ):
        if sniff(head):
            return fmt
    if "bead" in head[:2000].lower() and ":" in head.splitlines()[0]:
        raise _unsupported(
            path, "a bead-map or panel description, not a plate export; expected a plate export"
        )
    raise _unsupported(path, "unknown plate export format; supported: " + ", ".join(SUPPORTED))


def read_plate(
    path: str | Path, layout: str | Path | None = None, panel: Any = None, seed: int = 0
) -> PlateData:
    """Read a plate export of any supported format.

    Parameters
    ----------
    path
        The export file, or the folder of a LEGENDplex plate.
    layout
        Optional plate layout (grid or long table, see
        :func:`immuno.chemokines.io.layout.read_layout`); its sample names and roles replace
        the export's, for labs that rename samples.
    panel
        The chemokine panel; a LEGENDplex plate needs its ``beads:`` section, the other
        formats do not read it.
    seed
        Seed of the LEGENDplex bead classification.

    Returns
    -------
    PlateData
    """
    path = Path(path)
    cache: dict[str, Any] = {}
    fmt = detect_format(path, cache)
    if fmt == "legendplex":
        plate, beads = legendplex.read_legendplex(path, panel, layout, seed)
        plate.beads = beads
        return plate
    readers = {
        "xponent": xponent.read_xponent,
        "intelliflex": intelliflex.read_intelliflex,
        "bioplex": lambda p: bioplex.read_bioplex(p, cache.get("sheets")),
        "bioplex_xml": bioplex_xml.read_bioplex_xml,
        "msd": lambda p: msd.read_msd(p, cache.get("sheets")),
        "methodical_mind": msd.read_methodical_mind,
        "cfx": lambda p: cfx.read_cfx(p, cache.get("sheets")),
        "quantstudio": lambda p: quantstudio.read_quantstudio(p, cache.get("sheets")),
        "rdml": rdml.read_rdml,
    }
    plate = readers[fmt](path)
    if layout is not None:
        if plate.kind != "multiplex":
            raise UserError.single(
                str(layout), "a plate layout applies to multiplex plates, not qPCR runs"
            )
        plate.wells = apply_layout(plate.wells, read_layout(layout))
    return plate
