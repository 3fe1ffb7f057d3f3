"""Read any supported plate export, choosing the reader from the file's content.

The file name never decides: a ``.csv`` can be an xPONENT, MSD or CFX export, a
``.txt`` a QuantStudio export, and RDML is a zip. An unknown format is a clear error
that lists what is supported.
"""

from __future__ import annotations

from pathlib import Path

from immuno.chemokines import bioplex, msd, qpcr_readers, xponent
from immuno.chemokines.plate import PlateData, apply_layout, read_layout
from immuno.errors import UserError

SUPPORTED = ("Luminex xPONENT CSV", "Bio-Plex Manager Excel (.xls/.xlsx)", "MSD Discovery Workbench CSV",
             "Bio-Rad CFX CSV", "QuantStudio text export", "RDML")


def detect_format(path: str | Path) -> str:
    """The export format of a file from its first bytes: ``xponent``, ``bioplex``,
    ``msd``, ``cfx``, ``quantstudio`` or ``rdml``.

    Raises
    ------
    UserError
        When the file is missing, unreadable or of no supported format.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError.single(str(path), "file not found")
    if path.stat().st_size == 0:
        raise UserError.single(str(path), "the file is empty; expected a plate export")
    if bioplex.sniff(path):
        return "bioplex"
    if qpcr_readers.sniff_rdml(path):
        return "rdml"
    with open(path, "rb") as fh:
        raw = fh.read(65536)
    head = raw.decode("utf-8-sig", errors="replace")
    if xponent.sniff(head):
        return "xponent"
    if msd.sniff(head):
        return "msd"
    if qpcr_readers.sniff_cfx(head):
        return "cfx"
    if qpcr_readers.sniff_quantstudio(head):
        return "quantstudio"
    raise UserError.single(str(path), "unknown plate export format; supported: " + ", ".join(SUPPORTED),
                           hint="Export the plate from the instrument software in one of these formats.")


_READERS = {"xponent": xponent.read_xponent, "bioplex": bioplex.read_bioplex, "msd": msd.read_msd,
            "cfx": qpcr_readers.read_cfx, "quantstudio": qpcr_readers.read_quantstudio,
            "rdml": qpcr_readers.read_rdml}


def read_plate(path: str | Path, layout: str | Path | None = None) -> PlateData:
    """Read a plate export of any supported format.

    Parameters
    ----------
    path
        The export file.
    layout
        Optional plate layout (grid or long table, see
        :func:`immuno.chemokines.plate.read_layout`); its sample names and roles replace
        the export's, for labs that rename samples.

    Returns
    -------
    PlateData
    """
    fmt = detect_format(path)
    plate = _READERS[fmt](Path(path))
    if layout is not None:
        if plate.kind != "multiplex":
            raise UserError.single(str(layout), "a plate layout applies to multiplex plates, not qPCR runs")
        plate.wells = apply_layout(plate.wells, read_layout(layout))
    return plate
