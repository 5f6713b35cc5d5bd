r"""Convergence statistics of ``(chain, draw, K)`` arrays, computed by ``arviz_stats``.

ESS, R-hat and MCSE are the rank-normalised estimators of Vehtari, Gelman, Simpson,
Carpenter & Bürkner, *Rank-normalization, folding, and localization: an improved R-hat for
assessing convergence of MCMC*, Bayesian Analysis (2021):

* ``r_hat``: split-R-hat of the rank-normalised draws and of the folded draws
  :math:`|x - \mathrm{median}(x)|`, the larger of the two;
* ``ess_bulk``: ESS of the rank-normalised split chains;
* ``ess_tail``: the smaller ESS of the indicators :math:`I(x \le q_{0.05})` and
  :math:`I(x \le q_{0.95})` (:data:`TAIL_PROBS`);
* ``mcse_mean``: :math:`\mathrm{sd}(x) / \sqrt{\mathrm{ESS}_\mathrm{mean}}`;
* ``mcse_sd``: the delta-method error of the standard deviation as the installed
  arviz-stats computes it (0.8: with the mean's ESS). This estimator is not stable across
  ArviZ releases (ArviZ 0.23 used the ESS of the squared deviations and gives e.g. 0.73x
  the 0.8 value on strongly autocorrelated AR(1) chains), so it is the one column that
  differs from ``arviz.summary`` of 0.x; ESS, R-hat, ``mcse_mean`` and the HDI equal
  ArviZ 0.23's (tests/diagnostics/test_arviz_versions.py checks them to 1e-8, relative).
* ``hdi``: the narrowest interval holding a fraction ``prob`` of the pooled draws.
"""

from __future__ import annotations

import warnings

import arviz_stats
import numpy as np
import xarray as xr

__all__ = ["STATISTICS", "TAIL_PROBS", "array_statistic"]

#: Names accepted by :func:`array_statistic`.
STATISTICS = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "hdi")

#: Quantiles of the tail ESS (Vehtari et al. 2021, section 4.3). Passed explicitly because
#: arviz-stats 0.8 otherwise takes them from its ``stats.ci_prob`` setting (0.89, giving the
#: 11% and 89% quantiles), which would change ESS-tail whenever a user changes that setting.
TAIL_PROBS = (0.05, 0.95)


def array_statistic(draws: np.ndarray, what: str, prob: float | None = None) -> np.ndarray:
    """One statistic of ``(chain, draw, K)`` draws.

    Args:
        draws: array of shape ``(chain, draw, K)`` (cast to float64).
        what: one of :data:`STATISTICS`.
        prob: the HDI mass (``what="hdi"`` only), in (0, 1).

    Returns:
        shape ``(K,)``, or ``(K, 2)`` (lower, upper) for ``"hdi"``. NaN where a component
        cannot be assessed (fewer than 4 draws, a constant chain for R-hat).

    Example:
        >>> draws = np.random.default_rng(0).normal(size=(4, 100, 2))
        >>> array_statistic(draws, "ess_bulk").shape
        (2,)
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, K), got {draws.shape}")
    if what not in STATISTICS:
        raise ValueError(f"unknown statistic {what!r}; expected one of {STATISTICS}")
    if what == "hdi" and (prob is None or not 0 < prob < 1):
        raise ValueError(f"the hdi needs prob in (0, 1), got {prob!r}")
    # The xarray interface fills every default the array interface leaves to the caller.
    dataset = xr.Dataset({"x": (("chain", "draw", "component"), draws)})
    with warnings.catch_warnings():
        # Short or constant chains warn and give NaN: NaN is the answer. Many short
        # vectorised chains (more chains than draws) are on purpose, not a transposition.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        if what == "hdi":
            result = arviz_stats.hdi(dataset, prob=prob)
        elif what == "mcse_mean" or what == "mcse_sd":
            result = arviz_stats.mcse(dataset, method=what[5:])
        elif what == "ess_tail":
            result = arviz_stats.ess(dataset, method="tail", prob=TAIL_PROBS)
        elif what == "ess_bulk":
            result = arviz_stats.ess(dataset, method="bulk")
        else:
            result = arviz_stats.rhat(dataset)
    return np.asarray(result["x"].transpose("component", ...).values, dtype=np.float64)
