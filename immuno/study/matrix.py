"""Samples x features matrices of one panel: the wide table and AnnData for scanpy.

Censored values get a stated substitute in ``X`` (LLOQ/2 below, ULOQ above, see
:func:`immuno.contract.measurements.censored_substitute`); the stored values stay in the layer
``value_raw`` (NaN where censored), with ``censored`` and ``qc_pass`` layers beside.
A feature that has no value at all for some sample (failed, not estimable, a score of
unquantified inputs) cannot be substituted: by default it is moved out of ``X`` into
``obsm["missing_features"]`` (listed in ``uns["missing_features"]``) so that ``X`` is
complete and scanpy's PCA, scaling and tests work; ``missing="keep"`` keeps it in ``X``
with NaN.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from immuno.contract.batch import visit_sort_key
from immuno.contract.measurements import censored_substitute, flag_words

LOG = logging.getLogger("immuno.study")
#: the rule written into every AnnData's uns
CENSORED_RULE = ("X holds censored values at a substitute: <LLOQ as LLOQ/2, >ULOQ as ULOQ; "
                 "layers: value_raw (stored values, NaN where censored), censored (bool), qc_pass (bool)")


def obs_name(batch_id: pd.Series, sample_id: pd.Series) -> pd.Series:
    """Observation names: ``<batch_id>/<sample_id>`` (sample ids repeat across batches)."""
    return batch_id.astype(str) + "/" + sample_id.astype(str)


def ordered_visits(visits: Any) -> list[str]:
    """Visit codes in time order (D0 < D10 < M1), empty codes left out."""
    return sorted({str(v) for v in visits if str(v)}, key=visit_sort_key)


def _pivot(m: pd.DataFrame, column: str, features: list[str], names: list[str]) -> pd.DataFrame:
    wide = m.pivot(index="obs", columns="feature", values=column)
    return wide.reindex(index=names, columns=features)


def to_anndata(m: pd.DataFrame, panel: str, features: list[str], missing: str = "move",
               provenance: dict[str, Any] | None = None, duplicates: set[str] | None = None):
    """AnnData of one panel's rows (see the module docstring).

    Parameters
    ----------
    m
        Measurement rows of one assay and panel (already selected).
    panel
        The panel (recorded in var and uns).
    features
        The features, in var order.
    missing
        ``"move"`` (default) or ``"keep"``.
    provenance
        Recorded in ``uns["provenance"]``.
    duplicates
        Observation names that duplicate another batch's measurement (``obs["duplicate"]``).
    """
    import anndata as ad  # anndata, slow to import: only for an AnnData export

    if missing not in ("move", "keep"):
        raise ValueError(f"missing must be 'move' or 'keep', not {missing!r}")
    m = m.assign(obs=obs_name(m["batch_id"], m["sample_id"]))
    m = m.assign(used=censored_substitute(m["value"], m["flag"], m["lower"], m["upper"]),
                 censored=m["flag"].map(lambda f: bool({"<LLOQ", ">ULOQ"} & set(flag_words(f)))) & m["value"].isna())
    info = m.drop_duplicates("obs").set_index("obs")
    visits = ordered_visits(info["visit"])
    names = sorted(info.index, key=lambda o: (str(info.loc[o, "patient_id"]), visit_sort_key(info.loc[o, "visit"]), o))
    x = _pivot(m, "used", features, names)
    raw = _pivot(m, "value", features, names)
    cens = _pivot(m, "censored", features, names).fillna(False).astype(bool)
    qc = _pivot(m, "qc_pass", features, names).fillna(False).astype(bool)
    incomplete = [f for f in features if x[f].isna().any()]
    keep = features if missing == "keep" else [f for f in features if f not in incomplete]
    obs = pd.DataFrame(index=pd.Index(names, name="obs", dtype=str))
    for col in ("batch_id", "sample_id", "patient_id"):
        obs[col] = pd.Categorical(info.loc[names, col].astype(str))
    obs["visit"] = pd.Categorical(info.loc[names, "visit"].astype(str), categories=visits + (
        [""] if (info["visit"] == "").any() else []), ordered=True)
    obs["control"] = info.loc[names, "control"].astype(bool).to_numpy()
    obs["duplicate"] = [o in (duplicates or set()) for o in names]
    units = m.drop_duplicates("feature").set_index("feature")["unit"]
    var = pd.DataFrame(index=pd.Index(keep, name="feature", dtype=str))
    var["panel"] = panel
    var["unit"] = [str(units[f]) for f in keep]
    var["n_censored"] = [int(cens[f].sum()) for f in keep]
    var["n_failing_qc"] = [int((~qc[f]).sum()) for f in keep]
    adata = ad.AnnData(X=x[keep].to_numpy(dtype=np.float64), obs=obs, var=var)
    adata.layers["value_raw"] = raw[keep].to_numpy(dtype=np.float64)
    adata.layers["censored"] = cens[keep].to_numpy(dtype=bool)
    adata.layers["qc_pass"] = qc[keep].to_numpy(dtype=bool)
    moved = [f for f in incomplete if f not in keep]
    if moved:
        adata.obsm["missing_features"] = raw[moved].set_axis(names).rename_axis(None)
        LOG.info("features without a value for every sample moved to obsm['missing_features']: %s", moved)
    adata.uns["missing_features"] = moved
    adata.uns["censored_rule"] = CENSORED_RULE
    adata.uns["panel"] = panel
    adata.uns["provenance"] = provenance or {}
    return adata
