"""The references' own reads at each marker, as the fit net of background needs them.

:func:`foreign_reads` adds to a reference pair's table, at every recipient-homozygous
marker, the reads of the allele the recipient lacks (the *foreign* allele) in the
recipient reference (with its pure-recipient replicates) and in the donor reference;
:func:`background_prior` fits the run's background prior on them, and
:func:`estimate_net` fits one biopsy with them (the model is
:mod:`immuno.chimerism.ngs.background`) and names any doubtful input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from immuno.chimerism.common.result import Flag
from immuno.chimerism.ngs.background import (
    F_GRID,
    MIN_BACKGROUND_SITES,
    MIN_DISPERSION_SITES,
    BackgroundPrior,
    NetFit,
    NetLikelihood,
    dispersion,
    fit_background_prior,
    fit_net,
    maximise,
)

#: overdispersion above which the widening is reported as a flag
WIDENING_NOTE = 1.2

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


def background_prior(table: pd.DataFrame, phi: float = 1.0) -> BackgroundPrior:
    """The run's background prior from the recipient's reads at its homozygous markers
    (each read counting ``1 / phi`` where the reads are overdispersed by ``phi``)."""
    hom = np.isin(table["g_recipient"].to_numpy(float), (0.0, 2.0))
    m = table["recipient_depth"].to_numpy(float)[hom]
    x = table["recipient_foreign"].to_numpy(float)[hom]
    return fit_background_prior(x / phi, m / phi)


@dataclass
class NetEstimate:
    """One biopsy's fit net of background, and what a reader must know about its inputs."""

    fit: NetFit
    expected_foreign: np.ndarray
    flags: list[Flag]
    details: dict[str, float]


def estimate_net(
    table: pd.DataFrame,
    foreign_k: np.ndarray,
    depth: np.ndarray,
    use: np.ndarray,
    companions: np.ndarray,
    prior: BackgroundPrior,
    genome_equivalents: float | None = None,
) -> NetEstimate:
    """Fit one biopsy net of background (:mod:`immuno.chimerism.ngs.background`).

    Parameters
    ----------
    table
        The reference pair's table with :data:`FOREIGN_COLUMNS`.
    foreign_k, depth
        The biopsy's reads of the allele the recipient lacks, and its depth, per marker.
    use, companions
        The informative recipient-homozygous markers, and the non-informative ones
        (recipient and donor homozygous for the same allele) that give the overdispersion.
    prior
        The run's background prior.
    genome_equivalents
        Input DNA, when known.

    Returns
    -------
    NetEstimate
        The fit (at the sample's overdispersion), the expected foreign-read fraction at
        every used marker, the flags on doubtful inputs and the numbers behind them.
    """
    cols = {c: table[c].to_numpy(float) for c in FOREIGN_COLUMNS}
    lik_args = (
        foreign_k[use],
        depth[use],
        cols["recipient_foreign"][use],
        cols["recipient_depth"][use],
        cols["donor_foreign"][use],
        cols["donor_depth"][use],
    )
    lik = NetLikelihood(*lik_args, prior)
    first = maximise(lik)
    # every recipient-homozygous marker at the first fit: the non-informative ones show
    # the background alone, the informative ones the background and the donor's share
    sites_used = use | companions
    phi, sites = dispersion(
        foreign_k[sites_used],
        depth[sites_used],
        cols["recipient_foreign"][sites_used],
        cols["recipient_depth"][sites_used],
        cols["donor_foreign"][sites_used],
        cols["donor_depth"][sites_used],
        prior,
        first.fraction,
    )
    peak = first
    if sites >= MIN_DISPERSION_SITES and phi > 1.0:
        # the reference's reads scatter as the biopsy's do: the prior is refitted on
        # their effective counts, and every read counts 1 / phi
        prior = background_prior(table, phi)
        lik = NetLikelihood(*lik_args, prior, phi)
        # the maximum moves little: searched between the first fit's neighbouring points
        j = int(np.searchsorted(F_GRID, first.fraction))
        bracket = (float(F_GRID[max(j - 2, 0)]), float(F_GRID[min(j + 1, len(F_GRID) - 1)]))
        peak = maximise(lik, bracket)
    # phi is estimated from these sites (one fraction fitted): its own noise is in the
    # F and t references of the interval, the test and the limits
    df = sites - 1 if sites >= MIN_DISPERSION_SITES else None
    fit = fit_net(lik, genome_equivalents, df=df, peak=peak)
    b, a = (v[0] for v in lik.nuisance(np.array([fit.fraction])))
    flags = []
    if prior.sites < MIN_BACKGROUND_SITES:
        flags.append(
            Flag(
                "background_from_few_sites",
                "warning",
                f"the background level rests on {prior.sites} recipient-homozygous reference "
                f"marker(s) (< {MIN_BACKGROUND_SITES}): the interval and the LoB may be too narrow",
            )
        )
    if sites < MIN_DISPERSION_SITES:
        flags.append(
            Flag(
                "overdispersion_not_estimated",
                "info",
                f"{sites} recipient-homozygous marker(s) with reads (< {MIN_DISPERSION_SITES}): "
                "the sample's overdispersion could not be read, the interval assumes none",
            )
        )
    elif phi > WIDENING_NOTE:
        flags.append(
            Flag(
                "interval_widened",
                "info",
                f"the biopsy's reads scatter {phi:.2f} times more than its references predict "
                "(Pearson): each read counts 1 / phi, the interval about sqrt(phi) times wider",
            )
        )
    details = {
        "phi": phi,
        "dispersion_sites": float(sites),
        "background_sites": float(prior.sites),
        "background_level": prior.level,
        "background_alpha": prior.alpha,
        "background_beta": prior.beta,
        "loglik": fit.loglik,
        "lr_statistic": fit.lr_statistic,
    }
    expected = np.full(len(table), np.nan)
    expected[use] = (1 - fit.fraction) * b + fit.fraction * a
    return NetEstimate(fit, expected, flags, details)
