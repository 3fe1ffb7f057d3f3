"""NGS reference genotypes: the alternate-allele dose of recipient and donor per marker.

The alternate-allele fraction at depth >= 100 gives the alternate dose 0/1/2 (homozygous
at VAF <= 0.05 or >= 0.95, heterozygous within 0.3-0.7, otherwise no call). Which markers
are informative is decided for both methods in :mod:`immuno.chimerism.common.genotypes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: NGS defaults
MIN_DEPTH = 100
HOM_VAF = 0.05
HET_RANGE = (0.3, 0.7)


def call_ngs_genotype(
    counts: pd.DataFrame,
    min_depth: int = MIN_DEPTH,
    hom_vaf: float = HOM_VAF,
    het_range: tuple[float, float] = HET_RANGE,
) -> pd.DataFrame:
    """Call the alternate-allele dose (0/1/2) per marker from one reference's counts.

    Parameters
    ----------
    counts
        Columns ``marker``, ``depth``, ``alt_count`` (e.g. from
        :func:`immuno.chimerism.ngs.exports.read_marker_counts`).
    min_depth
        Markers with fewer reads get no call.
    hom_vaf
        Homozygous when VAF <= ``hom_vaf`` (dose 0) or >= 1 - ``hom_vaf`` (dose 2).
    het_range
        Heterozygous (dose 1) when VAF lies within this range.

    Returns
    -------
    pandas.DataFrame
        ``marker``, ``depth``, ``vaf``, ``genotype`` (float 0/1/2, NaN for no call) and
        ``call`` (``ok``, ``low_depth``, ``ambiguous_vaf``).
    """
    depth = counts["depth"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vaf = np.where(depth > 0, counts["alt_count"].to_numpy(float) / depth, np.nan)
    geno = np.full(len(vaf), np.nan)
    geno[vaf <= hom_vaf] = 0
    geno[vaf >= 1 - hom_vaf] = 2
    geno[(vaf >= het_range[0]) & (vaf <= het_range[1])] = 1
    call = np.where(np.isnan(geno), "ambiguous_vaf", "ok").astype(object)
    low = ~(depth >= min_depth)
    geno[low] = np.nan
    call[low] = "low_depth"
    return pd.DataFrame(
        {
            "marker": counts["marker"].astype(str).to_numpy(),
            "depth": depth,
            "vaf": vaf,
            "genotype": geno,
            "call": call,
        }
    )
