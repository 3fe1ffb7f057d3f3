"""The profile-likelihood interval of the counts model, checked against a brute-force profile."""

from __future__ import annotations

import numpy as np
import pytest

from immuno.chimerism.ngs.likelihood import CHI2_95, BetaBinomialLikelihood, fit_fraction
from immuno.demo.chimerism import simulate_marker_counts

MARKERS = 40
#: a dense rho grid (0.01 decade steps): the brute-force profile needs no stencil
RHO = 10.0 ** np.arange(1.0, 6.0, 0.01)


def _brute_profile(lik: BetaBinomialLikelihood, f: np.ndarray) -> np.ndarray:
    return lik.loglik(np.asarray(f, float), RHO).max(axis=1)


@pytest.mark.parametrize("fraction", [0.003, 0.05, 0.1, 0.2, 0.3, 0.6])
def test_interval_ends_sit_on_the_likelihood_drop(fraction: float) -> None:
    # recipient-homozygous markers with donor doses 1 and 2, ~1000x, rho = 800
    rng = np.random.default_rng(3)
    g_r = np.tile([0.0, 2.0, 0.0, 2.0], MARKERS // 4)
    g_d = np.tile([1.0, 1.0, 2.0, 0.0], MARKERS // 4)
    error = np.full(MARKERS, 1e-3)
    n, k = simulate_marker_counts(rng, g_r, g_d, fraction, np.full(MARKERS, 1000.0), error)
    lik = BetaBinomialLikelihood(k, n, g_r, g_d, error)
    fit, _ = fit_fraction(lik)
    # the maximum, by brute force on a fine f grid around the estimate
    f_grid = np.linspace(fit.lower, fit.upper, 401)
    l_max = _brute_profile(lik, f_grid).max()
    assert fit.loglik == pytest.approx(l_max, abs=0.01)
    # at each end, twice the drop from the maximum is the chi2_1 95 % quantile
    drops = 2 * (l_max - _brute_profile(lik, np.array([fit.lower, fit.upper])))
    assert drops == pytest.approx([CHI2_95, CHI2_95], abs=0.03), (fit, drops)
    assert fit.lower < fraction < fit.upper
