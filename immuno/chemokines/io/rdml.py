"""RDML run files (versions 1.0-1.3, zipped or plain XML), the instrument-neutral qPCR
format LightCycler and other instruments write.

They become the qPCR wells table (:data:`immuno.chemokines.io.plate.QPCR_COLUMNS`): one row
per reaction and target with its Cq, the sample's role (unknown / standard / ntc / nac /
control) and the standard quantity where given.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_qpcr,
    normal_well,
    slug,
    to_float,
)
from immuno.errors import UserError

_RDML_TYPE = {
    "unkn": "unknown",
    "std": "standard",
    "ntc": "ntc",
    "nac": "nac",
    "ntp": "ntc",
    "nrt": "nac",
    "pos": "control",
    "opt": "control",
}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def sniff_rdml(path: Path) -> bool:
    """Whether a file is RDML (a zip holding an XML document, or the XML itself)."""
    with open(path, "rb") as fh:
        head = fh.read(400)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                xml = [n for n in z.namelist() if n.lower().endswith(".xml")]
                return any(b"<rdml" in z.read(n)[:4000].lower() for n in xml)
        except (zipfile.BadZipFile, KeyError):
            return False
    return b"<rdml" in head.lower()


def _rdml_document(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            # the RDML document itself (rdml_data.xml); other members are vendor extras
            names = [n for n in z.namelist() if n.lower().endswith(".xml")]
            name = next((n for n in names if b"<rdml" in z.read(n)[:4000].lower()), None)
            if name is None:
                raise StopIteration
            return z.read(name)
    return path.read_bytes()


def read_rdml(path: str | Path) -> PlateData:
    """Read the Cq values of an RDML file (versions 1.0-1.3, zipped or plain XML).

    Sample names come from a sample's id, or from its description when the id is a
    machine identifier (LightCycler 96 writes GUIDs); a target ``FAM@bACT`` (dye@gene) is
    named by its gene. A Cq beyond the run's last cycle (LightCycler writes 100 for no
    amplification) is read as undetermined, with a note.
    """
    path = Path(path)
    try:
        root = ElementTree.fromstring(_rdml_document(path))
    except (zipfile.BadZipFile, StopIteration, ElementTree.ParseError) as exc:
        raise UserError.single(
            str(path), f"not a readable RDML file ({exc or 'no RDML document inside'})"
        ) from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""

    def t(el: ElementTree.Element | None, tag: str) -> str:
        found = el.find(f"{ns}{tag}") if el is not None else None
        return (found.text or "").strip() if found is not None and found.text else ""

    samples = {}
    for s in root.findall(f"{ns}sample"):
        sid = s.get("id", "")
        name = t(s, "description") if _GUID.match(sid) and t(s, "description") else sid
        samples[sid] = (
            name,
            _RDML_TYPE.get(t(s, "type").lower(), "unknown"),
            to_float(t(s.find(f"{ns}quantity"), "value")),
        )
    targets = {}
    for tg in root.findall(f"{ns}target"):
        tid = tg.get("id", "")
        dye_el = tg.find(f"{ns}dyeId")
        dye = (dye_el.get("id") or t(tg, "dyeId")) if dye_el is not None else ""
        gene = tid.split("@", 1)[1] if "@" in tid and not _GUID.match(tid.split("@", 1)[1]) else tid
        targets[tid] = (gene, dye)
    records, beyond = [], 0
    runs = [run for exp in root.findall(f"{ns}experiment") for run in exp.findall(f"{ns}run")]
    for k, run in enumerate(runs, start=1):
        fmt = run.find(f"{ns}pcrFormat")
        cols = int(to_float(t(fmt, "columns"))) if fmt is not None and t(fmt, "columns") else 12
        for react in run.findall(f"{ns}react"):
            rid = react.get("id", "")
            if rid.isdigit() and int(rid) > 0:  # RDML numbers wells row by row from 1
                n = int(rid) - 1
                well = f"{chr(ord('A') + n // cols)}{n % cols + 1}"
            else:
                well = normal_well(rid)
            well = well if k == 1 else f"{k}:{well}"
            sample_el = react.find(f"{ns}sample")
            name, role, qty = samples.get(
                sample_el.get("id", "") if sample_el is not None else "", ("", "unknown", math.nan)
            )
            for d in react.findall(f"{ns}data"):
                tar = d.find(f"{ns}tar")
                target, dye = targets.get(tar.get("id", "") if tar is not None else "", ("", ""))
                cq = to_float(t(d, "cq"))
                cycles = [to_float(t(a, "cyc")) for a in d.findall(f"{ns}adp")]
                if cycles and math.isfinite(cq) and cq > max(cycles):
                    cq, beyond = math.nan, beyond + 1
                records.append(
                    {
                        "well": well,
                        "sample_name": name,
                        "role": role,
                        "target": target or "",
                        "reporter": dye,
                        "cq": cq,
                        "quantity": qty if role == "standard" else math.nan,
                    }
                )
    if not records:
        raise UserError.single(str(path), "the RDML file holds no reactions with data")
    issues = []
    if beyond:
        issues.append(
            PlateIssue(
                "cq_beyond_cycles",
                str(path),
                f"{beyond} reactions state a Cq beyond the run's last "
                "cycle (no amplification): read as undetermined",
                blocking=False,
            )
        )
    plate_id = slug(path.stem)
    return PlateData(
        plate_id=plate_id,
        format="rdml",
        kind="qpcr",
        wells=finish_qpcr(records, plate_id),
        issues=issues,
    )
