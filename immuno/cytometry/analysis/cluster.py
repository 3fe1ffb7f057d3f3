"""Exploration: pooled, downsampled events clustered with scanpy.

For analysts, beside the gates: CD4+ T cells of chosen samples (e.g. all D0 and all M1
tubes) are pooled with the same number of events per sample, so no sample dominates,
then clustered on the transformed marker values (scanpy neighbours, Leiden, UMAP; no
PCA below 50 channels). Each cluster is described by its median marker expression and
cross-tabulated against the gates, so a cluster can be named in the lab's terms.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from immuno.errors import UserError


@dataclass
class Clustering:
    """The result of :func:`cluster_events`.

    Attributes
    ----------
    adata
        The pooled events with ``obs["leiden"]`` and ``obsm["X_umap"]``.
    annotation
        Cluster x marker median expression (transformed scale), plus ``n_events`` and a
        ``label`` listing the markers the cluster is high in.
    crosstab
        Cluster x gate: the fraction of each cluster's events inside each gate.
    """

    adata: ad.AnnData
    annotation: pd.DataFrame
    crosstab: pd.DataFrame


def _marker_columns(adata: ad.AnnData) -> list[str]:
    """Fluorescence markers: var rows with a marker name that are not scatter or time."""
    var = adata.var
    if "marker" not in var.columns:
        return list(adata.var_names)
    keep = [name for name, m in zip(adata.var_names, var["marker"], strict=True)
            if isinstance(m, str) and m and not str(name).upper().startswith(("FSC", "SSC", "TIME"))]
    return keep


def _read_events(path: str | os.PathLike[str]) -> ad.AnnData:
    """A per-event file as the pipeline writes it; its index is the event number, which
    AnnData turns into strings with a warning that says nothing new here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Transforming to str index")
        return ad.read_h5ad(path)


def pool_events(samples: Mapping[str, ad.AnnData | str | os.PathLike[str]], population: str = "CD4",
                n_per_sample: int = 2000, seed: int = 0) -> ad.AnnData:
    """Pool a population's events from several samples, downsampled to the same size.

    Parameters
    ----------
    samples
        Sample id -> per-event AnnData (or its ``.h5ad`` path) as the pipeline writes it
        (gate memberships as boolean ``obs`` columns).
    population
        The gate or population whose events are pooled.
    n_per_sample
        Events drawn per sample without replacement (all when fewer).
    seed
        Seed of the draw (the same seed gives the same pool).

    Returns
    -------
    anndata.AnnData
        var = the markers shared by all samples (by marker name), X = transformed values,
        obs = ``sample_id`` and the boolean gate columns shared by all samples.

    Raises
    ------
    UserError
        When a sample lacks the population column or no markers are shared.
    """
    parts: list[ad.AnnData] = []
    for i, (sid, item) in enumerate(samples.items()):
        a = item if isinstance(item, ad.AnnData) else _read_events(item)
        if population not in a.obs.columns:
            raise UserError.single(f"sample {sid}", f"no gate or population {population!r} in its events "
                                   f"(has: {', '.join(c for c in a.obs.columns if a.obs[c].dtype == bool)})")
        rows = np.flatnonzero(a.obs[population].to_numpy(dtype=bool))
        if len(rows) > n_per_sample:
            rng = np.random.default_rng([seed, i])
            rows = np.sort(rng.choice(rows, n_per_sample, replace=False))
        cols = _marker_columns(a)
        names = [str(a.var.loc[c, "marker"]) if "marker" in a.var.columns else str(c) for c in cols]
        x = np.asarray(a[:, cols].X[rows] if not hasattr(a.X, "toarray") else a[:, cols].X[rows].toarray(),
                       dtype=np.float32)
        gate_cols = [c for c in a.obs.columns if a.obs[c].dtype == bool]
        obs = a.obs.iloc[rows][gate_cols].reset_index(drop=True)
        obs.insert(0, "sample_id", sid)
        obs.index = [f"{sid}:{r}" for r in rows]
        parts.append(ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=names)))
    if not parts:
        raise UserError.single("pool_events", "no samples given")
    shared = [m for m in parts[0].var_names if all(m in p.var_names for p in parts[1:])]
    if not shared:
        raise UserError.single("pool_events", "the samples share no marker")
    gates = [c for c in parts[0].obs.columns if all(c in p.obs.columns for p in parts[1:])]
    pooled = ad.concat([p[:, shared] for p in parts], join="inner")
    pooled.obs = pd.concat([p.obs[gates] for p in parts])
    pooled.obs["sample_id"] = pooled.obs["sample_id"].astype("category")
    pooled.uns["pool"] = {"population": population, "n_per_sample": int(n_per_sample), "seed": int(seed),
                          "samples": list(samples)}
    return pooled


def cluster_events(pooled: ad.AnnData, *, markers: Sequence[str] | None = None, n_neighbors: int = 15,
                   resolution: float = 0.5, seed: int = 0, umap: bool = True) -> Clustering:
    """Leiden clusters (and UMAP) of pooled events, annotated and cross-tabulated with gates.

    Parameters
    ----------
    pooled
        From :func:`pool_events` (or any AnnData with transformed values in X).
    markers
        Markers to cluster on (default: all of ``var_names``).
    n_neighbors, resolution
        scanpy neighbour graph size and Leiden resolution.
    seed
        Random state of the neighbour search, Leiden and UMAP.
    umap
        Also compute the UMAP embedding.

    Returns
    -------
    Clustering
    """
    import scanpy as sc  # scanpy, slow to import: only when events are clustered

    use = list(markers) if markers is not None else list(pooled.var_names)
    missing = [m for m in use if m not in pooled.var_names]
    if missing:
        raise UserError.single("cluster_events", f"marker(s) {', '.join(missing)} not in the pooled events")
    adata = pooled[:, use].copy()
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X", random_state=seed)
    sc.tl.leiden(adata, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False)
    if umap:
        sc.tl.umap(adata, random_state=seed)
    clusters = adata.obs["leiden"]
    x = pd.DataFrame(np.asarray(adata.X), columns=use, index=adata.obs_names)
    annotation = x.groupby(clusters.to_numpy(), observed=True).median()
    annotation.index.name = "cluster"
    overall_med, overall_sd = x.median(), x.std(ddof=0).replace(0, np.nan)
    high = (annotation - overall_med) / overall_sd > 0.5
    annotation["n_events"] = clusters.value_counts().reindex(annotation.index).to_numpy()
    annotation["label"] = [" ".join(f"{m}+" for m in use if high.loc[c, m]) or "low" for c in annotation.index]
    gates = [c for c in adata.obs.columns if adata.obs[c].dtype == bool]
    crosstab = adata.obs.groupby("leiden", observed=True)[gates].mean() if gates else pd.DataFrame(
        index=annotation.index)
    crosstab.index.name = "cluster"
    params: dict[str, Any] = {"markers": use, "n_neighbors": n_neighbors, "resolution": resolution,
                              "seed": seed}
    adata.uns["immuno_cluster"] = params
    return Clustering(adata=adata, annotation=annotation, crosstab=crosstab)
