"""What STR and NGS genotypes share: allele labels and which markers are informative.

Allele labels (the repeat value of ``9.3``, ``OL@<size>`` for an off-ladder allele), the
informative pattern of an STR locus from the recipient's and donor's alleles, and the
pairing of recipient and donor calls of either method into the informative markers.
The calls themselves are the methods' own: :mod:`immuno.chimerism.str.genotypes` and
:mod:`immuno.chimerism.ngs.genotypes`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def repeat_value(allele: str) -> float:
    """Numeric repeat count of an allele label (``9.3`` -> 9.3); NaN for X, Y, OL."""
    try:
        return float(allele)
    except ValueError:
        return math.nan


def off_ladder_label(size: float) -> str:
    """The label of an off-ladder allele: ``OL@159.7`` (matched between samples by size)."""
    return f"OL@{size:.1f}"


def str_pattern(recipient: tuple[str, ...], donor: tuple[str, ...]) -> str:
    """Name the informative pattern of a locus (a = shared, r/d = person-specific).

    ``identical``; ``no_shared``; ``shared_both_het`` (R{a,r} D{a,d});
    ``recipient_hom`` (R{a,a} D{a,d}); ``donor_hom`` (R{a,r} D{a,a}, useless below ~5 %).
    """
    r, d = set(recipient), set(donor)
    if r == d:
        return "identical"
    if not r & d:
        return "no_shared"
    if len(r) == 2 and len(d) == 2:
        return "shared_both_het"
    return "recipient_hom" if len(r) == 1 else "donor_hom"


def informative_markers(recipient: pd.DataFrame, donor: pd.DataFrame) -> pd.DataFrame:
    """Pair recipient and donor calls and say which markers or loci are informative.

    Parameters
    ----------
    recipient, donor
        Outputs of :func:`call_ngs_genotype` (column ``genotype``) or of
        :func:`call_str_genotype` (column ``alleles``).

    Returns
    -------
    pandas.DataFrame
        One row per marker called in both: ``marker``, the two genotypes (``g_recipient``,
        ``g_donor`` for NGS; ``recipient_alleles``, ``donor_alleles`` for STR),
        ``pattern`` and ``informative``. NGS patterns: ``recipient_hom`` (the donor carries
        an allele the recipient lacks: usable at any level), ``recipient_het`` (only the
        dose changes: useful above ~2 %), ``identical``.
    """
    if "alleles" in recipient.columns:
        m = recipient[recipient["call"] == "ok"].merge(
            donor[donor["call"] == "ok"], on="marker", suffixes=("_r", "_d")
        )
        out = pd.DataFrame(
            {
                "marker": m["marker"],
                "recipient_alleles": m["alleles_r"],
                "donor_alleles": m["alleles_d"],
                "recipient_stutter": m["stutter_ratio_r"],
            }
        )
        out["pattern"] = [
            str_pattern(r, d)
            for r, d in zip(out["recipient_alleles"], out["donor_alleles"], strict=True)
        ]
    else:
        # plain arrays: this runs once per biopsy in a batch, pandas merges cost milliseconds
        g_r = recipient["genotype"].to_numpy(float)
        idx = pd.Index(donor["marker"].astype(str)).get_indexer(recipient["marker"].astype(str))
        g_d = np.where(idx >= 0, donor["genotype"].to_numpy(float)[idx], np.nan)
        keep = ~np.isnan(g_r) & ~np.isnan(g_d)
        g_r, g_d = g_r[keep], g_d[keep]
        pattern = np.where(
            g_r == g_d, "identical", np.where(g_r == 1, "recipient_het", "recipient_hom")
        )
        out = pd.DataFrame(
            {
                "marker": recipient["marker"].astype(str).to_numpy()[keep],
                "g_recipient": g_r,
                "g_donor": g_d,
                "pattern": pattern,
            }
        )
    out["informative"] = out["pattern"] != "identical"
    return out.reset_index(drop=True)
