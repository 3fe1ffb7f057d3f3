"""The references' own reads at each marker, as the fit net of background needs them.

:func:`foreign_reads` adds to a reference pair's table, at every recipient-homozygous
marker, the reads of the allele the recipient lacks (the *foreign* allele) in the
recipient reference (with its pure-recipient replicates) and in the donor reference;
:func:`background_prior` fits the run's background prior on them. The fit itself is
:mod:`immuno.chimerism.ngs.background`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from immuno.chimerism.ngs.background import BackgroundPrior, fit_background_prior

#: the columns :func:`foreign_reads` adds
FOREIGN_COLUMNS = ("recipient_depth", "recipient_foreign", "donor_depth", "donor_foreign")


def _reads(counts: pd.DataFrame, markers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Depth and alternate reads of ``counts`` at ``markers`` (0 where absent; summed
    where a marker is listed twice)."""
    names = pd.Index(counts["marker"].astype(str))
    depth, alt = counts["depth"].to_numpy(float), counts["alt_count"].to_numpy(float)
    if not names.is_unique:
        summed = pd.DataFrame({"d": depth, "a": alt}, index=names).groupby(level=0).sum()
        names, depth, alt = summed.index, summed["d"].to_numpy(), summed["a"].to_numpy()
    idx = names.get_indexer(markers.astype(str))
    found = idx >= 0
    return np.where(found, depth[idx], 0.0), np.where(found, alt[idx], 0.0)


def foreign(depth: np.ndarray, alt: np.ndarray, g_recipient: np.ndarray) -> np.ndarray:
    """Reads of the allele the recipient lacks (NaN where the recipient is heterozygous)."""
    return np.where(g_recipient == 0, alt, np.where(g_recipient == 2, depth - alt, np.nan))


def foreign_reads(
    table: pd.DataFrame,
    recipient: pd.DataFrame,
    donor: pd.DataFrame,
    replicates: Sequence[pd.DataFrame] = (),
) -> None:
    """Add :data:`FOREIGN_COLUMNS` to a reference pair's ``table`` (in place).

    Pure-recipient replicates are blanks of every marker the recipient is homozygous at:
    their reads add to the recipient reference's.
    """
    g_r = table["g_recipient"].to_numpy(float)
    m, alt = _reads(recipient, table["marker"])
    x = foreign(m, alt, g_r)
    for rep in replicates:
        dm, da = _reads(rep, table["marker"])
        m, x = m + dm, x + foreign(dm, da, g_r)
    t, dalt = _reads(donor, table["marker"])
    table["recipient_depth"], table["recipient_foreign"] = m, x
    table["donor_depth"], table["donor_foreign"] = t, foreign(t, dalt, g_r)


def background_prior(table: pd.DataFrame) -> BackgroundPrior:
    """The run's background prior from the recipient's reads at its homozygous markers."""
    hom = np.isin(table["g_recipient"].to_numpy(float), (0.0, 2.0))
    m = table["recipient_depth"].to_numpy(float)[hom]
    x = table["recipient_foreign"].to_numpy(float)[hom]
    return fit_background_prior(x, m)
