"""The chemokine room's output files: tables, the concentrations AnnData and curve plots."""

from __future__ import annotations

import math
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from immuno.chemokines.io.plate import PlateData, slug
from immuno.chemokines.pipeline.plots import plot_curve
from immuno.chemokines.quantify.multiplex import PlateResult
from immuno.io import write_parquet

ASSAY = "chemokine"
FLAG_CODES = {"": 0, "<LLOQ": 1, ">ULOQ": 2, "curve_failed": 3, "no_wells": 4, "failed": 5}


def write_frame(parts: list[pd.DataFrame], path: Path) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype(str)
    write_parquet(df, path)
    return df


def write_curve_plots(result: PlateResult, plate: PlateData, folder: Path) -> None:
    """One PNG per analyte of a quantified plate: standards, fit, samples, LLOQ/ULOQ."""
    for analyte, curve in result.fitted.items():
        feat = result.curves.loc[result.curves["analyte"] == analyte, "feature"].iloc[0]
        std = plate.wells[(plate.wells["analyte"] == analyte) & (plate.wells["role"] == "standard")]
        smp = (
            result.samples[result.samples["analyte"] == analyte]
            if len(result.samples)
            else result.samples
        )
        # file names from slugs: the plate id is one already; a label such as CCL11/Eotaxin is no path
        name = slug(re.sub(r"[\\/]", "_", str(feat)), "analyte")
        plot_curve(
            curve,
            std,
            smp,
            folder / f"{slug(plate.plate_id)}_{name}.png",
            title=f"{plate.plate_id} - {feat}",
        )


def concentrations_anndata(
    samples: pd.DataFrame, batch_id: str, files: dict[str, str], panels: dict[str, str]
) -> ad.AnnData:
    """obs = samples, var = analytes (features); X = value (NaN when censored or failed);
    layers ``mean_net_mfi``, ``extrapolated`` and ``flag`` (codes in ``uns['flag_codes']``)."""
    if samples.empty:
        adata = ad.AnnData(np.zeros((0, 0), dtype=np.float64))
    else:
        s = samples.copy()
        for col in ("mean_net_mfi", "extrapolated"):
            if col not in s.columns:
                s[col] = math.nan
        s["flag_code"] = s["flag"].map(FLAG_CODES).fillna(FLAG_CODES["failed"]).astype(float)
        obs = (
            s.drop_duplicates("sample_id")
            .set_index("sample_id")[["patient_id", "visit", "plate_id", "panel"]]
            .sort_index()
        )
        obs = obs.astype(str).assign(batch_id=batch_id)
        feats = sorted(s["feature"].unique())

        def layer(col: str) -> np.ndarray:
            wide = s.pivot_table(
                index="sample_id", columns="feature", values=col, aggfunc="first", dropna=False
            )
            return wide.reindex(index=obs.index, columns=feats).to_numpy(dtype=np.float64)

        units = s.drop_duplicates("feature").set_index("feature")["unit"].reindex(feats).astype(str)
        adata = ad.AnnData(
            X=layer("value"), obs=obs, var=pd.DataFrame({"unit": units.to_numpy()}, index=feats)
        )
        adata.layers["mean_net_mfi"] = layer("mean_net_mfi")
        adata.layers["extrapolated"] = layer("extrapolated")
        adata.layers["flag"] = layer("flag_code")
    adata.uns["flag_codes"] = {k or "none": v for k, v in FLAG_CODES.items()}
    # h5 group keys cannot hold '/', so files are stored as parallel lists
    adata.uns["provenance"] = {
        "assay": ASSAY,
        "batch_id": batch_id,
        "input_files": list(files),
        "input_sha256": list(files.values()),
        "panels": list(panels),
        "panel_sha256": list(panels.values()),
    }
    return adata
