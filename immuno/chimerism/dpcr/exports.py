"""Digital PCR exports as the instruments write them, read by content.

One table per export: positive and accepted partitions per well and assay, the
instrument that wrote it, its partition volume, and the concentration recomputed from the
counts (``-ln(1 - k/N) / V``) next to the one the software reported, so that the two can
be compared.

=====================  ====================================================  ============
export                 recognised by                                          partition
=====================  ====================================================  ============
QuantaSoft (<= 1.7)    ``AcceptedDroplets``, ``Concentration``                0.91 nL
QX Manager             ``Accepted Droplets``, ``Conc(copies/µL)``             0.85 nL
QIAcuity               ``Partitions (Valid)``, ``Partitions (Positive)``      well volume
                                                                              / 8,510 (8.5K
                                                                              Nanoplate)
Absolute Q             ``Channels``, ``Count``, ``Copies per microliter``     0.432 nL
droplet amplitudes     ``Ch1 Amplitude`` / ``Cluster`` or ``Target Value``    (counts only)
plain table            ``Positives``, ``Accepted Droplets``/``Total``         unknown
=====================  ====================================================  ============

The partition volumes are those the software's own concentrations imply: recomputed from
the real exports in ../shared/data/real/chimerism/ddpcr/ they match the reported values
to rounding (older QuantaSoft 0.91 nL, QX Manager 0.85 nL; QIAcuity divides the well's
stated volume among 8,510 partitions of an 8.5K Nanoplate; Absolute Q 0.432 nL). A donor
fraction needs only copies per partition (the volume cancels); the volume matters for the
concentrations reported.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.chimerism.common.tables import delimited, norm, numbers, pick, read_text
from immuno.errors import UserError

DDPCR_COLUMNS = [
    "sample_name",
    "well",
    "assay",
    "positive",
    "total",
    "instrument",
    "partition_volume_nl",
    "concentration",
    "vendor_concentration",
]
#: partition volume (nL) by instrument software
PARTITION_NL = {"QuantaSoft": 0.91, "QX Manager": 0.85, "Absolute Q": 0.432}
#: partitions per well of QIAcuity Nanoplates, by the plate type's name
QIACUITY_PARTITIONS = {"8.5k": 8510.0}
#: amplitude-file clusters (QuantaSoft): which channels each cluster is positive for
_CLUSTERS = {1: (False, False), 2: (True, False), 3: (True, True), 4: (False, True)}


def read_ddpcr(path: str | Path) -> pd.DataFrame:
    """Read a digital PCR export: one row per well and assay.

    Parameters
    ----------
    path
        Any export in the table above. The layout is recognised from its columns, not
        from its name.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DDPCR_COLUMNS`: ``positive`` and ``total`` partitions,
        ``instrument`` (the software recognised), ``partition_volume_nl`` (NaN when
        unknown), ``concentration`` (copies/µL recomputed from the counts; NaN without a
        volume) and ``vendor_concentration`` (as exported; NaN when absent). Rows without
        counts (a template export, an unused channel) are left out.

    Raises
    ------
    UserError
        A layout that is none of these, a count that is not a number, or no well with
        counts at all.
    """
    path = Path(path)
    text = read_text(path)
    if _is_amplitude(text):
        table = _amplitude(path, text)
    else:
        df = delimited(path, text=text)
        cols = {norm(c) for c in df.columns}
        if {"partitionsvalid", "partitionspositive"} <= cols:
            table = _qiacuity(df, path)
        elif {"channels", "count", "copiespermicroliter"} <= cols:
            table = _absolute_q(df, path)
        elif "accepteddroplets" in cols and any(
            c.startswith("conccopies") or c.startswith("copies20") for c in cols
        ):
            table = _bio_rad(
                df,
                path,
                "QX Manager"
                if "accepted droplets" in {c.lower() for c in df.columns}
                else "QuantaSoft",
            )
        elif "accepteddroplets" in cols and "concentration" in cols:
            table = _bio_rad(df, path, "QuantaSoft")
        else:
            table = _plain(df, path)
    table = table[table["total"] > 0].reset_index(drop=True)
    if table.empty:
        raise UserError.single(
            str(path),
            "no well has droplet or partition counts; expected Positives and "
            "Accepted Droplets (or the vendor's equivalents) filled in",
        )
    lam = -np.log1p(-np.minimum(table["positive"] / table["total"], 1 - 1e-12))
    table["concentration"] = lam / (table["partition_volume_nl"] * 1e-3)
    return table[DDPCR_COLUMNS]


def _is_amplitude(text: str) -> bool:
    """A per-droplet amplitude file: a 'Target Value' preamble, or a short header of
    amplitude and cluster columns."""
    lines = [ln for ln in text.splitlines()[:12] if ln.strip()]
    if any(ln.lower().startswith("target value of") for ln in lines):
        return True
    cells = [norm(c) for c in re.split(r"[,;\t]", lines[0])] if lines else []
    cells = [c for c in cells if c]
    return bool(cells) and all(c.endswith("amplitude") or c in ("cluster", "1", "2") for c in cells)


def _bio_rad(df: pd.DataFrame, path: Path, instrument: str) -> pd.DataFrame:
    t = pick(
        df,
        path,
        {
            "sample_name": ("Sample", "Sample description 1", "Sample Name"),
            "well": ("Well",),
            "assay": ("Target", "Assay"),
            "positive": ("Positives",),
            "total": ("AcceptedDroplets", "Accepted Droplets"),
            "vendor": ("Conc(copies/µL)", "Concentration", "Conc(copies/uL)"),
        },
        optional=("vendor",),
    )
    has = t["positive"].str.strip() != ""
    t = t[has].reset_index(drop=True)
    return _finish(t, path, instrument, PARTITION_NL[instrument], "Positives", "Accepted Droplets")


def _qiacuity(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    t = pick(
        df,
        path,
        {
            "sample_name": ("Sample/NTC/Control", "Sample"),
            "well": ("Well",),
            "assay": ("Target (Name)", "Target"),
            "positive": ("Partitions (Positive)",),
            "total": ("Partitions (Valid)",),
            "vendor": ("Conc. [cp/µL] (dPCR reaction)",),
            "well_volume": ("Volume per well [µl]", "Volume per well [µL]"),
            "plate_type": ("Plate type",),
        },
        optional=("vendor", "well_volume", "plate_type"),
    )
    plate = t.get("plate_type", pd.Series("", index=t.index)).replace("", np.nan).ffill().fillna("")
    partitions = np.array(
        [
            next((v for k, v in QIACUITY_PARTITIONS.items() if k in p.lower()), np.nan)
            for p in plate
        ],
        float,
    )
    if "well_volume" in t:
        vol = numbers(t["well_volume"], path, "Volume per well [µl]", allow_missing=True)
        volume = 1e3 * vol / partitions
    else:
        volume = np.full(len(t), np.nan)
    out = _finish(t, path, "QIAcuity", math.nan, "Partitions (Positive)", "Partitions (Valid)")
    out["partition_volume_nl"] = volume
    return out


def _absolute_q(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    t = pick(
        df,
        path,
        {
            "sample_name": ("Sample",),
            "assay": ("Channels",),
            "positive": ("Count",),
            "total": ("Total",),
            "vendor": ("Copies per microliter",),
        },
    )
    # one row per channel combination: the single-dye rows count every partition positive
    # for that dye (the combined rows are its overlaps, the blank one the negatives)
    single = (t["assay"].str.strip() != "") & ~t["assay"].str.strip().str.contains(" ")
    t = t[single].reset_index(drop=True)
    t["well"] = ""
    return _finish(t, path, "Absolute Q", PARTITION_NL["Absolute Q"], "Count", "Total")


def _plain(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    t = pick(
        df,
        path,
        {
            "sample_name": ("Sample", "Sample Name", "Sample description 1"),
            "well": ("Well",),
            "assay": ("Assay", "Target"),
            "positive": ("Positives", "Positive", "Positive droplets"),
            "total": (
                "Accepted Droplets",
                "AcceptedDroplets",
                "Total",
                "Total droplets",
                "Droplets",
            ),
        },
        optional=("sample_name", "well"),
    )
    if "sample_name" not in t:
        t["sample_name"] = path.stem
    if "well" not in t:
        t["well"] = ""
    return _finish(t, path, "unknown", math.nan, "Positives", "Accepted Droplets")


def _finish(
    t: pd.DataFrame, path: Path, instrument: str, volume_nl: float, pos_name: str, total_name: str
) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "sample_name": t["sample_name"].to_numpy(),
            "well": t["well"].to_numpy(),
            "assay": t["assay"].to_numpy(),
        }
    )
    out["positive"] = numbers(t["positive"], path, pos_name, count=True)
    out["total"] = numbers(t["total"], path, total_name, count=True)
    out["instrument"] = instrument
    out["partition_volume_nl"] = volume_nl
    out["vendor_concentration"] = (
        numbers(t["vendor"], path, "concentration", allow_missing=True) if "vendor" in t else np.nan
    )
    bad = out["positive"] > out["total"]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError.single(
            f"{path}: data row {i + 1}",
            f"{out['positive'][i]:.0f} positive of "
            f"{out['total'][i]:.0f} partitions; positives cannot exceed the accepted partitions",
        )
    return out


def _amplitude(path: Path, text: str) -> pd.DataFrame:
    """A per-droplet amplitude export (QuantaSoft ``Cluster`` or QX Manager ``Target Value``).

    The well comes from the file name (``..._A01_Amplitude.csv``), the assays are ``Ch1``
    and ``Ch2``; unclassified droplets (``u``) are not counted.
    """
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if "amplitude" in ln.lower()), None)
    if start is None:
        raise UserError.single(
            str(path), "no amplitude header row; expected Ch1/Ch2 amplitude columns"
        )
    df = delimited(path, text="\n".join(lines[start:]))
    cols = {norm(c): c for c in df.columns}
    well_match = re.search(r"_([A-P]\d{2})_Amplitude", path.name, re.IGNORECASE)
    well = well_match.group(1).upper() if well_match else ""
    if "cluster" in cols:
        cluster = numbers(df[cols["cluster"]], path, "Cluster").astype(int)
        unknown = sorted(set(cluster) - set(_CLUSTERS))
        if unknown:
            raise UserError.single(
                f"{path}: column Cluster",
                f"cluster {unknown[0]} is not one of 1-4 (negative, Ch1+, Ch1+Ch2+, Ch2+)",
            )
        ch1 = np.array([_CLUSTERS[c][0] for c in cluster])
        ch2 = np.array([_CLUSTERS[c][1] for c in cluster])
        accepted = np.ones(len(cluster), bool)
    elif "1" in cols and "2" in cols:
        v1, v2 = df[cols["1"]].str.strip().str.lower(), df[cols["2"]].str.strip().str.lower()
        accepted = ~(v1.eq("u") | v2.eq("u")).to_numpy()
        ch1, ch2 = v1.eq("1").to_numpy(), v2.eq("1").to_numpy()
    else:
        raise UserError.single(
            str(path), f"no Cluster or Target Value columns; the file has: {', '.join(df.columns)}"
        )
    total = float(accepted.sum())
    return pd.DataFrame(
        {
            "sample_name": well or path.stem,
            "well": well,
            "assay": ["Ch1", "Ch2"],
            "positive": [float((ch1 & accepted).sum()), float((ch2 & accepted).sum())],
            "total": [total, total],
            "instrument": "QuantaSoft amplitudes",
            "partition_volume_nl": math.nan,
            "vendor_concentration": math.nan,
        }
    )
