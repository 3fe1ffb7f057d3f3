"""Checks of a biopsy's NGS reads that every fit shares: reads of alleles no reference
carries, an unknown third contributor, the pooled donor-allele count, and the biopsy's
reads aligned to a reference table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from immuno.chimerism.common.result import Flag
from immuno.chimerism.ngs.detection import excess_reads

MIN_INFORMATIVE = 3
#: log-likelihood advantage of an unknown contributor over the donor that raises the flag
THIRD_CONTRIBUTOR_LLR = math.log(100.0)
#: one-sided level of the test for reads of alleles that no reference carries
UNEXPLAINED_ALPHA = 0.001
#: level at which those reads confirm a third contributor suggested by the likelihood ratio
CORROBORATION_ALPHA = 0.05


def third_contributor_flag(llr: float, details: dict[str, float]) -> Flag:
    """The flag of reads that fit an unknown person better than the donor (llr above
    :data:`THIRD_CONTRIBUTOR_LLR`)."""
    # an unknown person also carries alleles where recipient and donor agree: reads
    # there confirm it; without them (at low levels the unknown-person model's
    # freedom fits noise now and then) it is a warning
    confirmed = details.get("unexplained_p", 0.0) < CORROBORATION_ALPHA
    return Flag(
        "third_contributor",
        "fail" if confirmed else "warning",
        f"the non-recipient reads fit an unknown third person better than the MSC donor "
        f"(log-likelihood ratio {llr:.1f}"
        + ("" if confirmed else "; not confirmed by reads where recipient and donor agree")
        + "); suspect contamination or a sample swap",
    )


def background_rel_se(cols: dict[str, np.ndarray], use: np.ndarray) -> float:
    """Relative standard error of the biopsy's expected background reads at the used markers."""
    n, e, v = cols["depth"][use], cols["error_rate"][use], cols["error_var"][use]
    shared = float(cols["error_shared_var"][use].max()) if use.any() else 0.0
    expected = float((n * e).sum())
    return (
        math.sqrt(float((n**2 * v).sum()) + float(n.sum()) ** 2 * shared) / expected
        if expected > 0
        else 0.0
    )


def unexplained_alleles(
    cols: dict[str, np.ndarray], companions: np.ndarray, rho: float, details: dict[str, float]
) -> list[Flag]:
    """Reads of alleles no reference carries, at markers where recipient and donor agree."""
    if companions.sum() < MIN_INFORMATIVE:
        return []
    n, alt = cols["depth"][companions], cols["alt_count"][companions]
    x = np.where(cols["g_recipient"][companions] == 0, alt, n - alt)
    # an unknown person carries the other allele at half the markers on average
    z, p, fraction = excess_reads(
        x,
        n,
        cols["error_rate"][companions],
        cols["error_var"][companions],
        np.full(len(x), 0.5),
        rho,
        float(cols["error_shared_var"][companions].max()),
    )
    details["unexplained_z"], details["unexplained_p"] = z, p
    if p >= UNEXPLAINED_ALPHA:
        return []
    return [
        Flag(
            "unexplained_alleles",
            "warning",
            f"{int(x.sum())} reads of alleles that neither the recipient nor the donor carries at "
            f"{len(x)} markers (background predicts {float((n * cols['error_rate'][companions]).sum()):.0f}; "
            f"z = {z:.1f}): a third contributor (contamination, another donor) or a sample mix-up, "
            f"about {100 * fraction:.2g} % of the DNA",
        )
    ]


def with_columns(table: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The reference table with the biopsy's columns added (one concat: assign is slow)."""
    return pd.DataFrame({**{c: table[c].to_numpy() for c in table.columns}, **columns})


LIK_COLUMNS = ("alt_count", "depth", "g_recipient", "g_donor", "error_rate")


def aligned_reads(biopsy: pd.DataFrame, markers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The biopsy's depth and alternate reads at ``markers`` (0 where the marker is absent)."""
    names = pd.Index(biopsy["marker"].astype(str))
    depth, alt = biopsy["depth"].to_numpy(float), biopsy["alt_count"].to_numpy(float)
    if not names.is_unique:
        summed = pd.DataFrame({"depth": depth, "alt": alt}, index=names).groupby(level=0).sum()
        names, depth, alt = summed.index, summed["depth"].to_numpy(), summed["alt"].to_numpy()
    idx = names.get_indexer(markers.astype(str))
    found = idx >= 0
    return np.where(found, depth[idx], 0.0), np.where(found, alt[idx], 0.0)


def pooled_poisson(cols: dict[str, np.ndarray], rec_hom: np.ndarray) -> float:
    """p-value of the donor-allele reads at recipient-homozygous markers against background."""
    if not rec_hom.any():
        return math.nan
    alt, depth = cols["alt_count"][rec_hom], cols["depth"][rec_hom]
    donor_reads = np.where(cols["g_recipient"][rec_hom] == 0, alt, depth - alt).sum()
    expected = float((depth * cols["error_rate"][rec_hom]).sum())
    return float(special.pdtrc(donor_reads - 1, expected)) if donor_reads > 0 else 1.0
