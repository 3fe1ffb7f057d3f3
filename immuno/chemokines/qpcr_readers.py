"""RT-qPCR run exports: Bio-Rad CFX CSV, QuantStudio text, RDML.

All three become the qPCR wells table (:data:`immuno.chemokines.plate.QPCR_COLUMNS`):
one row per well and target with its Cq (NaN for ``Undetermined``), the role
(unknown / standard / ntc / nac / control) and the standard quantity where given.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from immuno.chemokines.plate import QPCR_COLUMNS, PlateData, to_float
from immuno.errors import UserError

_CFX_CONTENT = {"unkn": "unknown", "std": "standard", "ntc": "ntc", "nrt": "nac", "neg": "ntc",
                "pos": "control", "neg ctrl": "ntc", "pos ctrl": "control"}
_QS_TASK = {"UNKNOWN": "unknown", "STANDARD": "standard", "NTC": "ntc", "NAC": "nac"}
_RDML_TYPE = {"unkn": "unknown", "std": "standard", "ntc": "ntc", "nac": "nac", "ntp": "ntc",
              "nrt": "nac", "pos": "control", "opt": "control"}


def _finish(records: list[dict], plate_id: str, fmt: str, meta: dict[str, str] | None = None) -> PlateData:
    df = pd.DataFrame(records)
    for col in QPCR_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan if col in ("cq", "quantity") else ""
    df = df[QPCR_COLUMNS].copy()
    df["cq"] = pd.to_numeric(df["cq"], errors="coerce").astype(float)
    df.loc[df["cq"] <= 0, "cq"] = math.nan  # RDML writes -1 for "no Cq"
    df["quantity"] = pd.to_numeric(df["quantity"], errors="coerce").astype(float)
    df["omitted"] = df["omitted"].astype(str).str.lower().isin(["true", "1", "yes"])
    for col in ("plate_id", "well", "sample_name", "role", "target", "reporter"):
        df[col] = df[col].fillna("").astype(str)
    return PlateData(plate_id=plate_id, format=fmt, kind="qpcr", wells=df.reset_index(drop=True), meta=meta or {})


def sniff_cfx(head: str) -> bool:
    """Whether text looks like a CFX Maestro / CFX Manager quantification CSV."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    cells = [c.strip() for c in first.split(",")]
    return {"Well", "Fluor", "Content", "Cq"} <= set(cells)


def read_cfx(path: str | Path) -> PlateData:
    """Read a Bio-Rad CFX quantification CSV (Well, Fluor, Target, Content, Sample, Cq, ...)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig", errors="replace"))))
    header = [h.strip() for h in rows[0]]
    records = []
    for r in rows[1:]:
        if not any(c.strip() for c in r):
            continue
        rec = dict(zip(header, [c.strip() for c in r], strict=False))
        content = rec.get("Content", "").lower()
        role = _CFX_CONTENT.get(re.sub(r"-\d+$", "", content), "unknown")
        well = re.sub(r"^([A-P])0*(\d+)$", r"\1\2", rec.get("Well", ""))
        records.append({"plate_id": path.stem, "well": well, "sample_name": rec.get("Sample", ""),
                        "role": role, "target": rec.get("Target") or rec.get("Fluor", ""),
                        "reporter": rec.get("Fluor", ""), "cq": to_float(rec.get("Cq")),
                        "quantity": to_float(rec.get("Starting Quantity (SQ)"))})
    if not records:
        raise UserError.single(str(path), "no wells in the CFX export")
    return _finish(records, path.stem, "cfx")


def sniff_quantstudio(head: str) -> bool:
    """Whether text looks like a QuantStudio / 7500 text export."""
    text = head.lstrip("\ufeff")
    return text.startswith("* ") and ("[Sample Setup]" in text or "[Results]" in text)


def read_quantstudio(path: str | Path) -> PlateData:
    """Read a QuantStudio text export: ``* key = value`` header, then the ``[Results]``
    section (tab-separated: Well, Well Position, Omit, Sample Name, Target Name, Task,
    Reporter, CT or Cq, Quantity, ...)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    meta = {}
    for ln in lines:
        m = re.match(r"^\*\s*(.+?)\s*=\s*(.*)$", ln)
        if m and m.group(1) in ("Experiment Type", "Instrument Type", "Chemistry", "Quantification Cycle Method"):
            meta[m.group(1)] = m.group(2).strip()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "[Results]")
    except StopIteration:
        raise UserError.single(str(path), "no [Results] section; export the run with its results") from None
    body = []
    for ln in lines[start + 1:]:
        if ln.startswith("["):
            break
        if ln.strip():
            body.append(ln.split("\t"))
    if len(body) < 2:
        raise UserError.single(f"{path}: [Results]", "the section is empty")
    header = [h.strip() for h in body[0]]
    cq_col = "CT" if "CT" in header else ("Cq" if "Cq" in header else "Ct")
    records = []
    for r in body[1:]:
        rec = dict(zip(header, [c.strip() for c in r], strict=False))
        records.append({"plate_id": path.stem, "well": rec.get("Well Position", rec.get("Well", "")),
                        "sample_name": rec.get("Sample Name", ""), "role": _QS_TASK.get(rec.get("Task", "").upper(), "unknown"),
                        "target": rec.get("Target Name", ""), "reporter": rec.get("Reporter", ""),
                        "cq": to_float(rec.get(cq_col)), "quantity": to_float(rec.get("Quantity")),
                        "omitted": rec.get("Omit", "false")})
    return _finish(records, path.stem, "quantstudio", meta)


def sniff_rdml(path: Path) -> bool:
    """Whether a file is RDML (a zip holding an XML document, or the XML itself)."""
    with open(path, "rb") as fh:
        head = fh.read(400)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                return any(n.lower().endswith(".xml") for n in z.namelist()) and b"rdml" in z.read(
                    next(n for n in z.namelist() if n.lower().endswith(".xml")))[:2000].lower()
        except (zipfile.BadZipFile, StopIteration, KeyError):
            return False
    return b"<rdml" in head.lower()


def read_rdml(path: str | Path) -> PlateData:
    """Read the Cq values of an RDML file (versions 1.0-1.3, zipped or plain XML)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.lower().endswith(".xml"))
                data = z.read(name)
        else:
            data = path.read_bytes()
        root = ElementTree.fromstring(data)
    except (zipfile.BadZipFile, StopIteration, ElementTree.ParseError) as exc:
        raise UserError.single(str(path), f"not a readable RDML file ({exc})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""

    def t(el: ElementTree.Element | None, tag: str) -> str:
        found = el.find(f"{ns}{tag}") if el is not None else None
        return (found.text or "").strip() if found is not None and found.text else ""

    samples = {}
    for s in root.findall(f"{ns}sample"):
        q = s.find(f"{ns}quantity")
        samples[s.get("id", "")] = (_RDML_TYPE.get(t(s, "type").lower(), "unknown"), to_float(t(q, "value")))
    dyes = {tg.get("id", ""): (tg.find(f"{ns}dyeId").get("id") if tg.find(f"{ns}dyeId") is not None and tg.find(f"{ns}dyeId").get("id") else t(tg, "dyeId"))
            for tg in root.findall(f"{ns}target")}
    records = []
    for exp in root.findall(f"{ns}experiment"):
        for run in exp.findall(f"{ns}run"):
            fmt = run.find(f"{ns}pcrFormat")
            cols = int(to_float(t(fmt, "columns"))) if fmt is not None and t(fmt, "columns") else 12
            for react in run.findall(f"{ns}react"):
                rid = react.get("id", "")
                if rid.isdigit() and int(rid) > 0:  # RDML numbers wells row by row from 1
                    n = int(rid) - 1
                    well = f"{chr(ord('A') + n // cols)}{n % cols + 1}"
                else:
                    well = rid.upper()
                sample_el = react.find(f"{ns}sample")
                sid = sample_el.get("id", "") if sample_el is not None else ""
                role, qty = samples.get(sid, ("unknown", math.nan))
                for d in react.findall(f"{ns}data"):
                    tar = d.find(f"{ns}tar")
                    target = tar.get("id", "") if tar is not None else ""
                    records.append({"plate_id": f"{path.stem}:{run.get('id', '')}", "well": well, "sample_name": sid,
                                    "role": role, "target": target, "reporter": dyes.get(target, ""),
                                    "cq": to_float(t(d, "cq")), "quantity": qty if role == "standard" else math.nan})
    if not records:
        raise UserError.single(str(path), "the RDML file holds no reactions with data")
    return _finish(records, path.stem, "rdml")
