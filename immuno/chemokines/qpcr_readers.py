"""RT-qPCR run exports: Bio-Rad CFX (CSV and the table workbook), RDML.

Both become the qPCR wells table (:data:`immuno.chemokines.plate.QPCR_COLUMNS`): one row
per well and target with its Cq (NaN for ``Undetermined``), the role (unknown /
standard / ntc / nac / control) and the standard quantity where given. QuantStudio
exports have their own module (:mod:`immuno.chemokines.qpcr_quantstudio`).
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from immuno.chemokines.delimited import check_table, read_rows
from immuno.chemokines.plate import PlateData, PlateIssue, normal_well, read_number, slug, to_float
from immuno.chemokines.qpcr_quantstudio import finish_qpcr
from immuno.errors import UserError

_CFX_CONTENT = {"unkn": "unknown", "std": "standard", "ntc": "ntc", "nrt": "nac", "neg": "ntc",
                "pos": "control", "neg ctrl": "ntc", "pos ctrl": "control"}
_RDML_TYPE = {"unkn": "unknown", "std": "standard", "ntc": "ntc", "nac": "nac", "ntp": "ntc",
              "nrt": "nac", "pos": "control", "opt": "control"}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def sniff_cfx(head: str) -> bool:
    """Whether text looks like a CFX Maestro / CFX Manager quantification CSV."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    cells = [c.strip() for c in first.split(",")]
    return {"Well", "Fluor", "Content", "Cq"} <= set(cells)


def sniff_cfx_sheets(sheets: dict[str, pd.DataFrame]) -> bool:
    """Whether a workbook holds a CFX well table (Well, Fluor, Target, Content)."""
    return any(_cfx_header(df) is not None for df in sheets.values())


def _cfx_header(df: pd.DataFrame) -> int | None:
    for i in range(min(len(df), 10)):
        if {"Well", "Fluor", "Content"} <= {str(c).strip() for c in df.iloc[i].tolist()}:
            return i
    return None


def read_cfx(path: str | Path, sheets: dict[str, pd.DataFrame] | None = None) -> PlateData:
    """Read a Bio-Rad CFX quantification CSV (Well, Fluor, Target, Content, Sample, Cq, ...),
    or the CFX table workbook (a ``description`` sheet; amplification curves elsewhere)."""
    path = Path(path)
    issues: list[PlateIssue] = []
    if sheets is None:
        rows = read_rows(path.read_text(encoding="utf-8-sig", errors="replace"))
        where, unit = str(path), "line"
        dec = check_table(rows, 0, where)
    else:
        name, df = next((n, d) for n, d in sheets.items() if _cfx_header(d) is not None)
        h = _cfx_header(df)
        rows = [(i + 1, ["" if pd.isna(c) else str(c).strip() for c in df.iloc[i].tolist()]) for i in range(h, len(df))]
        where, unit, dec = f"{path}: sheet {name!r}", "row", False
        others = [n for n in sheets if n != name]
        if others:
            issues.append(PlateIssue("sheet_ignored", str(path), f"sheets {', '.join(repr(n) for n in others)} left "
                                     "aside (amplification curves: Cq values are not computed from curves)", blocking=False))
    header = rows[0][1]
    has_cq = "Cq" in header
    if not has_cq:
        issues.append(PlateIssue("no_cq", where, "the table has no Cq column; expected the quantification Cq results"))
    records = []
    for ln, r in rows[1:]:
        if not any(c.strip() for c in r):
            continue
        rec = dict(zip(header, r, strict=False))
        content = rec.get("Content", "").lower()
        role = _CFX_CONTENT.get(re.sub(r"-\d+$", "", content), "unknown")
        well = normal_well(rec.get("Well", ""))
        target = rec.get("Target") or rec.get("Fluor", "")
        cq, problem = read_number(rec.get("Cq"), "Cq", dec) if has_cq else (math.nan, "no Cq in the export")
        if "not a number" in problem:
            issues.append(PlateIssue("non_numeric", f"{where}, {unit} {ln}", f"well {well}, {target}: {problem}; "
                                     "expected a number", well, target))
        records.append({"well": well, "sample_name": rec.get("Sample", ""), "role": role, "target": target,
                        "reporter": rec.get("Fluor", ""), "cq": cq,
                        "quantity": to_float(rec.get("Starting Quantity (SQ)", rec.get("Starting Quantity")), dec),
                        "problem": f"{unit} {ln}: {problem}" if problem and "undetermined" not in problem.lower()
                        and "'nan'" not in problem.lower() else ""})
    if not records:
        raise UserError.single(str(path), "no wells in the CFX export")
    plate_id = slug(path.stem)
    return PlateData(plate_id=plate_id, format="cfx", kind="qpcr", wells=finish_qpcr(records, plate_id), issues=issues)


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
        raise UserError.single(str(path), f"not a readable RDML file ({exc or 'no RDML document inside'})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""

    def t(el: ElementTree.Element | None, tag: str) -> str:
        found = el.find(f"{ns}{tag}") if el is not None else None
        return (found.text or "").strip() if found is not None and found.text else ""

    samples = {}
    for s in root.findall(f"{ns}sample"):
        sid = s.get("id", "")
        name = t(s, "description") if _GUID.match(sid) and t(s, "description") else sid
        samples[sid] = (name, _RDML_TYPE.get(t(s, "type").lower(), "unknown"), to_float(t(s.find(f"{ns}quantity"), "value")))
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
            name, role, qty = samples.get(sample_el.get("id", "") if sample_el is not None else "", ("", "unknown", math.nan))
            for d in react.findall(f"{ns}data"):
                tar = d.find(f"{ns}tar")
                target, dye = targets.get(tar.get("id", "") if tar is not None else "", ("", ""))
                cq = to_float(t(d, "cq"))
                cycles = [to_float(t(a, "cyc")) for a in d.findall(f"{ns}adp")]
                if cycles and math.isfinite(cq) and cq > max(cycles):
                    cq, beyond = math.nan, beyond + 1
                records.append({"well": well, "sample_name": name, "role": role, "target": target or "",
                                "reporter": dye, "cq": cq, "quantity": qty if role == "standard" else math.nan})
    if not records:
        raise UserError.single(str(path), "the RDML file holds no reactions with data")
    issues = []
    if beyond:
        issues.append(PlateIssue("cq_beyond_cycles", str(path), f"{beyond} reactions state a Cq beyond the run's last "
                                 "cycle (no amplification): read as undetermined", blocking=False))
    plate_id = slug(path.stem)
    return PlateData(plate_id=plate_id, format="rdml", kind="qpcr", wells=finish_qpcr(records, plate_id), issues=issues)
