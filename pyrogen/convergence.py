r"""Reliability of an estimate: one warning class and one check used by every report.

A posterior estimate from MCMC is only a result when the chains agree and carry enough
information. :func:`check_convergence` applies the thresholds that ArviZ and Stan use,

* rank-normalised split :math:`\hat R \le 1.01` for every scalar component,
* bulk effective sample size :math:`\mathrm{ESS}_\text{bulk} \ge 100` for every component
  (Vehtari, Gelman, Simpson, Carpenter & Bürkner, Bayesian Analysis 2021, section 4),
* mean Metropolis-Hastings acceptance :math:`\ge 5\%` when the sampler reports one (below
  that a chain barely moves and its ESS estimate itself is unreliable),

and emits **one** :class:`ConvergenceWarning` per checked quantity naming the worst numbers.
The returned :class:`Reliability` goes into reports (``reliability.label`` reads
``"converged"`` or e.g. ``"not converged: R-hat 2.67, bulk ESS 12"``), so a report can mark
an estimate instead of presenting it as a result.

Components that are constant over every chain and draw (a pixel clamped by the evidence,
a coordinate the posterior fixes) have no defined R-hat or ESS and are left out of the
check: they cannot disagree between chains.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ACCEPT_MIN",
    "ESS_MIN",
    "R_HAT_MAX",
    "ConvergenceWarning",
    "Reliability",
    "check_convergence",
    "warn_unreliable",
]

#: Largest acceptable rank-normalised split R-hat (Vehtari et al. 2021; ArviZ's default).
R_HAT_MAX = 1.01
#: Smallest acceptable bulk ESS per component (Vehtari et al. 2021 recommend 100 = 4 chains
#: x 25 per chain; Stan warns below it).
ESS_MIN = 100.0
#: Smallest acceptable mean acceptance probability of a Metropolis-Hastings sampler.
ACCEPT_MIN = 0.05


class ConvergenceWarning(UserWarning):
    """An estimate was computed from chains (or importance weights) that fail a reliability
    check; the message names the quantity and the numbers. Filter it like any warning, e.g.
    ``warnings.simplefilter("error", pyrogen.ConvergenceWarning)`` to make it fatal."""


class Reliability(NamedTuple):
    """The outcome of :func:`check_convergence` for one reported quantity."""

    quantity: str
    max_r_hat: float  # over non-constant components; nan when every component is constant
    min_ess_bulk: float
    acceptance: float | None  # mean acceptance probability, None when not reported
    problems: tuple[str, ...]  # empty when every threshold is met

    @property
    def converged(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """``"converged"`` or ``"not converged: ..."`` for reports."""
        return "converged" if self.converged else "not converged: " + ", ".join(self.problems)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (non-finite numbers become None)."""

        def clean(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "quantity": self.quantity,
            "converged": self.converged,
            "max_r_hat": clean(self.max_r_hat),
            "min_ess_bulk": clean(self.min_ess_bulk),
            "acceptance": clean(self.acceptance),
            "label": self.label,
        }


def warn_unreliable(message: str, stacklevel: int = 2) -> None:
    """Emit a :class:`ConvergenceWarning` (for checks other than MCMC's, e.g. AIS weights)."""
    warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel + 1)


def _acceptance_from(source: Any) -> float | None:
    from pyrogen import diagnostics

    stats = diagnostics.sample_stats_arrays(source)
    for key in ("acceptance_rate", "accept_prob", "acceptance rate"):
        if key in stats:
            value = np.asarray(stats[key], dtype=np.float64)
            if value.size:
                return float(np.nanmean(value))
    return None


def _failing(value: float, fails: Any) -> str:
    """``value`` to 3 significant digits, or more where 3 would round it onto the passing
    side (R-hat 1.0146 must not read "1.01", ESS 99.96 must not read "100")."""
    for digits in range(3, 8):
        text = f"{value:.{digits}g}"
        if fails(float(text)):
            return text
    return repr(value)


def check_convergence(
    source: Any,
    quantity: str,
    *,
    var_names: Sequence[str] | None = None,
    acceptance: float | None = None,
    r_hat_max: float = R_HAT_MAX,
    ess_min: float = ESS_MIN,
    accept_min: float = ACCEPT_MIN,
    warn: bool = True,
    stacklevel: int = 2,
) -> Reliability:
    """Check the chains behind ``quantity`` and warn once if they fail a threshold.

    Args:
        source: ``InferenceData`` / DataTree (its ``posterior``; the acceptance is read from
            ``sample_stats`` when present) or a dict of ``(chain, draw, ...)`` arrays.
        quantity: what the chains estimate, for the message (``"inpainted pixels"``).
        var_names: the variables to check (default: all of the posterior).
        acceptance: mean acceptance probability in [0, 1]; read from ``sample_stats``
            (``acceptance_rate`` or ``accept_prob``) when ``None``.
        r_hat_max, ess_min, accept_min: the thresholds (module docstring).
        warn: emit the :class:`ConvergenceWarning`; ``False`` only computes.
        stacklevel: passed to :func:`warnings.warn` (2 points at the caller).

    Returns:
        :class:`Reliability` with the worst R-hat and bulk ESS over non-constant components.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> good = {"x": torch.randn(4, 500, generator=g)}
        >>> check_convergence(good, "x").label
        'converged'
        >>> offsets = torch.arange(4.0).reshape(4, 1)  # four chains stuck in four places
        >>> stuck = {"x": offsets + 0.01 * torch.randn(4, 500, generator=g)}
        >>> rel = check_convergence(stuck, "x", warn=False)
        >>> rel.converged, rel.max_r_hat > 1.5
        (False, True)
    """
    from pyrogen import diagnostics

    if not isinstance(quantity, str) or not quantity:
        raise TypeError(f"quantity must be a non-empty string, got {quantity!r}")
    components = diagnostics.flatten_components(source, var_names)
    varying = {k: v for k, v in components.items() if np.ptp(v) > 0}
    max_r_hat = min_ess = math.nan
    if varying:
        draws = np.stack(list(varying.values()), axis=-1)  # (chain, draw, K)
        r_hat = diagnostics.array_statistic(draws, "r_hat")
        ess = diagnostics.array_statistic(draws, "ess_bulk")
        # A NaN here means a degenerate split (e.g. one chain constant): the worst case.
        max_r_hat = float(np.max(np.where(np.isnan(r_hat), np.inf, r_hat)))
        min_ess = float(np.min(np.where(np.isnan(ess), 0.0, ess)))
    if acceptance is None and diagnostics.is_inference_data(source):
        acceptance = _acceptance_from(source)
    problems = []
    if varying and not max_r_hat <= r_hat_max:
        problems.append(f"R-hat {_failing(max_r_hat, lambda x: x > r_hat_max)}")
    if varying and not min_ess >= ess_min:
        problems.append(f"bulk ESS {_failing(min_ess, lambda x: x < ess_min)}")
    if acceptance is not None and not acceptance >= accept_min:
        problems.append(f"acceptance {_failing(acceptance, lambda x: x < accept_min)}")
    rel = Reliability(quantity, max_r_hat, min_ess, acceptance, tuple(problems))
    if warn and problems:
        warn_unreliable(
            f"{quantity}: {rel.label} (thresholds: R-hat <= {r_hat_max}, bulk ESS >= "
            f"{ess_min:g}, acceptance >= {accept_min:g}); do not report these estimates as "
            "results: run longer chains or use a better-mixing sampler",
            stacklevel=stacklevel + 1,
        )
    return rel
