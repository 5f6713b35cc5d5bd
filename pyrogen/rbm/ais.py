r"""Annealed importance sampling (AIS) estimates of an RBM's log partition function.

Following Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief
networks", ICML. The base model A has no couplings (:math:`W_A = 0`), a visible bias fitted to
the data marginals, and a known partition function; the target B is the RBM. The
intermediate distributions scale the target's parameters by the inverse temperature
:math:`\beta_k` (:math:`0 = \beta_0 < \dots < \beta_K = 1`):

.. math::
    \log p_k^*(v) = (1-\beta_k)\,a(v) + \beta_k\,q_B(v)
                    + \sum_j \operatorname{softplus}\!\big(\beta_k (c_j + (\tilde v^\top W)_j)\big)

with :math:`a(v) = b_A^\top v` (Bernoulli) or :math:`-\lVert v - b_A\rVert^2 / 2\sigma^2`
(Gaussian) and :math:`q_B` the target's visible term. Each :math:`p_k` is itself an RBM, so
a block-Gibbs sweep at temperature :math:`\beta_k` leaves it invariant. A run draws
:math:`v_1 \sim p_0`, moves :math:`v_{k+1} \sim T_k(v_k, \cdot)` and accumulates

.. math:: \log w = \sum_{k=1}^{K} \log p_k^*(v_k) - \log p_{k-1}^*(v_k),

and :math:`\hat Z_B = Z_A \cdot \operatorname{mean}(w)`. All of it in log space; the
standard error of :math:`\log \hat Z_B` is the delta-method value
:math:`\operatorname{sd}(w) / (\sqrt{M}\,\operatorname{mean}(w))` over the :math:`M` runs.
Because :math:`E[\hat Z] = Z`, :math:`\log \hat Z` tends to *under*-estimate :math:`\log Z`
(Jensen), so log-likelihoods computed with it are slightly optimistic.

**Reliability.** Both the estimate and its standard error are only as good as the spread of
the weights. Their effective sample size (Kish 1965, "Survey Sampling"; used for AIS by
Neal 2001, "Annealed importance sampling")

.. math:: \mathrm{ESS} = \frac{(\sum_m w_m)^2}{\sum_m w_m^2}
          = \exp\big(2 \operatorname{logsumexp}(\log w) - \operatorname{logsumexp}(2 \log w)\big)

lies between 1 (one run carries all the weight) and :math:`M` (equal weights). When it falls
below ``ESS_FRACTION_MIN`` (10%) of the runs, :func:`ais` emits a
:class:`~pyrogen.convergence.ConvergenceWarning`: the mean is then carried by a handful of runs,
and the delta-method standard error, estimated from those same few weights, can badly
understate the error (the usual symptom of too few temperatures for the model).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pyrogen._validation import check_positive_int, check_tensor
from pyrogen.convergence import warn_unreliable
from pyrogen.rbm.model import RBM
from pyrogen.seeding import make_generator

__all__ = ["AISResult", "ESS_FRACTION_MIN", "ais", "base_rate_bias", "effective_sample_size"]

#: :func:`ais` warns when the weights' effective sample size is below this fraction of the
#: runs. A heuristic cut-off, as Stan's ESS thresholds are: at 10% of 100 runs the estimate
#: rests on about ten of them.
ESS_FRACTION_MIN = 0.1


class AISResult(NamedTuple):
    """Outcome of :func:`ais`.

    Attributes:
        log_z: estimate of :math:`\\log Z` (0-dim tensor).
        stderr: delta-method standard error of ``log_z`` (0-dim tensor).
        log_weights: log importance weight of every run, shape ``(num_chains,)``.
        ess: effective sample size of the normalised weights (0-dim float64 tensor, between
            1 and ``num_chains``); see :func:`effective_sample_size`.
    """

    log_z: torch.Tensor
    stderr: torch.Tensor
    log_weights: torch.Tensor
    ess: torch.Tensor

    @property
    def ess_fraction(self) -> float:
        """``ess / num_chains``: 1 for equal weights, ``1 / num_chains`` for one dominant run."""
        return float(self.ess) / self.log_weights.numel()


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size of importance weights given as logs.

    .. math:: \mathrm{ESS} = \frac{(\sum_m w_m)^2}{\sum_m w_m^2}
              = \exp\big(2 \operatorname{logsumexp}_m \ell_m
                - \operatorname{logsumexp}_m 2 \ell_m\big), \qquad \ell_m = \log w_m,

    computed in float64 after subtracting :math:`\max_m \ell_m`, so that log weights of any
    magnitude (e.g. :math:`\pm 10^4`) give no overflow. ``log_weights`` has shape ``(M,)``
    (any shape is flattened); the result is a 0-dim float64 tensor in :math:`[1, M]`, or NaN
    when no weight is finite and positive (all :math:`-\infty`, or a NaN or :math:`+\infty`).

    Example:
        >>> round(float(effective_sample_size(torch.zeros(8))), 10)  # equal weights
        8.0
        >>> float(effective_sample_size(torch.tensor([0.0, -1e4, -1e4])))  # one dominates
        1.0
        >>> w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # 10^2 / 30
        >>> round(float(effective_sample_size(w.log())), 10)
        3.3333333333
    """
    check_tensor(log_weights, "log_weights")
    log_w = log_weights.detach().double().flatten()
    top = log_w.max()
    if not bool(torch.isfinite(top)):
        return torch.tensor(math.nan, dtype=torch.float64)
    shifted = log_w - top
    return torch.exp(2.0 * torch.logsumexp(shifted, 0) - torch.logsumexp(2.0 * shifted, 0))


def base_rate_bias(rbm: RBM, data: torch.Tensor | None) -> torch.Tensor:
    """Visible bias of the base-rate model: data log-odds (Bernoulli) or data mean (Gaussian).

    Bernoulli marginals are smoothed as ``(count + 0.5) / (n + 1)`` so that a pixel that is
    never on gets a large negative, finite bias. With ``data=None`` the base is uniform
    (Bernoulli) or centred at the RBM's own visible bias (Gaussian).
    """
    like = rbm.visible_bias.detach()
    if data is None:
        return like.clone() if rbm.is_gaussian else torch.zeros_like(like)
    rbm.check_visible(data, "data")
    data = data.to(like)
    if rbm.is_gaussian:
        return data.mean(0)
    p = (data.sum(0) + 0.5) / (data.shape[0] + 1.0)
    return torch.log(p) - torch.log1p(-p)


def _log_unnormalised(
    rbm: RBM, v: torch.Tensor, beta: float, base_bias: torch.Tensor
) -> torch.Tensor:
    """:math:`\\log p_\\beta^*(v)` of the intermediate model at inverse temperature ``beta``."""
    if rbm.is_gaussian:
        base_term = -0.5 * ((v - base_bias) ** 2).sum(-1) / rbm.sigma**2
    else:
        base_term = v @ base_bias
    target_term = -rbm._visible_term(v)
    coupling = F.softplus(beta * rbm._hidden_logits(v)).sum(-1)
    return (1.0 - beta) * base_term + beta * target_term + coupling


def _sample_base(
    rbm: RBM, base_bias: torch.Tensor, num_chains: int, generator: torch.Generator | None
) -> torch.Tensor:
    shape = (num_chains, rbm.n_visible)
    if rbm.is_gaussian:
        noise = torch.randn(
            shape, generator=generator, dtype=base_bias.dtype, device=base_bias.device
        )
        return base_bias + rbm.sigma * noise
    probs = torch.sigmoid(base_bias).expand(shape)
    return torch.bernoulli(probs, generator=generator)


def _transition(
    rbm: RBM,
    v: torch.Tensor,
    beta: float,
    base_bias: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One block-Gibbs sweep that leaves :math:`p_\\beta` invariant."""
    h = torch.bernoulli(torch.sigmoid(beta * rbm._hidden_logits(v)), generator=generator)
    coupled = rbm._visible_logits(h) - rbm.visible_bias  # scale * W h
    stat = (1.0 - beta) * base_bias + beta * (rbm.visible_bias + coupled)
    if rbm.is_gaussian:
        noise = torch.randn(stat.shape, generator=generator, dtype=stat.dtype, device=stat.device)
        return stat + rbm.sigma * noise
    return torch.bernoulli(torch.sigmoid(stat), generator=generator)


@torch.no_grad()
def ais(
    rbm: RBM,
    num_chains: int = 100,
    num_temperatures: int = 1000,
    base: torch.Tensor | None = None,
    data: torch.Tensor | None = None,
    seed: int | None = None,
    betas: torch.Tensor | None = None,
) -> AISResult:
    """Estimate :math:`\\log Z` of ``rbm`` by annealed importance sampling.

    Args:
        rbm: the target model (either unit type).
        num_chains: independent AIS runs :math:`M` (batched in one tensor).
        num_temperatures: number :math:`K` of intermediate distributions.
        base: visible bias of the base-rate model, shape ``(n_visible,)``; by default
            fitted to ``data`` with :func:`base_rate_bias`.
        data: training data for the base rate, shape ``(n, n_visible)``.
        seed: seed of the run's ``torch.Generator`` (on the model's device); the global RNG
            is left untouched. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        betas: explicit increasing schedule from 0 to 1 (overrides ``num_temperatures``).

    Returns:
        :class:`AISResult` with ``log_z``, ``stderr``, per-run ``log_weights`` and their
        effective sample size ``ess``.

    Warns:
        ConvergenceWarning: when ``ess`` is below ``ESS_FRACTION_MIN`` (10%) of
            ``num_chains``: the estimate rests on a few runs and ``stderr`` is unreliable.

    Example:
        >>> rbm = RBM(64, 200)
        >>> result = ais(rbm, num_chains=50, num_temperatures=200, seed=0)
        >>> float(result.stderr) < 0.1
        True
    """
    check_positive_int(num_chains, "num_chains")
    param = rbm.weight.detach()
    if betas is None:
        check_positive_int(num_temperatures, "num_temperatures", minimum=2)
        betas = torch.linspace(0.0, 1.0, num_temperatures, dtype=torch.float64)
    else:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 2 or betas[0] != 0 or betas[-1] != 1 or (betas.diff() <= 0).any():
            raise ValueError("betas must increase strictly from 0 to 1 with at least 2 entries")
    if base is None:
        base_bias = base_rate_bias(rbm, data)
    else:
        check_tensor(base, "base", ndim=1, last_dim=rbm.n_visible)
        base_bias = base.to(param)
    generator = make_generator(seed, param.device)

    if rbm.is_gaussian:
        log_z_base = torch.tensor(
            0.5 * rbm.n_visible * math.log(2 * math.pi * rbm.sigma**2), dtype=torch.float64
        )
    else:
        log_z_base = F.softplus(base_bias.double()).sum().cpu()
    # With beta = 0 the coupling term is n_hidden * log 2 for every v; Z_A includes it.
    log_z_base = log_z_base + rbm.n_hidden * math.log(2.0)

    beta_list = betas.tolist()
    v = _sample_base(rbm, base_bias, num_chains, generator)
    log_w = torch.zeros(num_chains, dtype=torch.float64, device=param.device)
    for k in range(1, len(beta_list)):
        prev, cur = beta_list[k - 1], beta_list[k]
        log_w += (
            _log_unnormalised(rbm, v, cur, base_bias) - _log_unnormalised(rbm, v, prev, base_bias)
        ).double()
        if k < len(beta_list) - 1:
            v = _transition(rbm, v, cur, base_bias, generator)
    log_w = log_w.cpu()
    log_mean_w = torch.logsumexp(log_w, 0) - math.log(num_chains)
    # sd(w) / mean(w), computed with weights rescaled by their maximum.
    rel = torch.exp(log_w - log_w.max())
    stderr = (
        rel.std(unbiased=True) / (rel.mean() * math.sqrt(num_chains))
        if num_chains > 1
        else torch.tensor(math.inf)
    )
    dtype = param.dtype
    result = AISResult(
        log_z=(log_z_base + log_mean_w).to(dtype),
        stderr=torch.as_tensor(stderr).to(dtype),
        log_weights=log_w,
        ess=effective_sample_size(log_w),
    )
    if not result.ess_fraction >= ESS_FRACTION_MIN:
        warn_unreliable(
            f"AIS estimate of log Z ({float(result.log_z):.4g} +/- {float(result.stderr):.2g}): "
            f"effective sample size of the importance weights {float(result.ess):.3g} of "
            f"{num_chains} runs ({result.ess_fraction:.1%}, threshold "
            f"{ESS_FRACTION_MIN:.0%}); the estimate rests on a few runs and its standard error "
            f"is unreliable: use more temperatures (now {len(beta_list)}) or more chains",
            stacklevel=3,  # past ais and torch.no_grad's wrapper, to the caller
        )
    return result
