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
from tqdm.auto import tqdm

from pyrogen._validation import check_positive_int, check_tensor
from pyrogen.convergence import warn_unreliable
from pyrogen.rbm.functional import free_energy, gibbs_sweep, hidden_logits, visible_term
from pyrogen.rbm.model import RBM
from pyrogen.seeding import make_generator

__all__ = [
    "AISResult",
    "ESS_FRACTION_MIN",
    "ais",
    "base_rate_bias",
    "effective_sample_size",
    "log_partition_floor",
    "reverse_ais",
    "salakhutdinov_murray_betas",
]

#: :func:`ais` warns when the weights' effective sample size is below this fraction of the
#: runs. A heuristic cut-off, as Stan's ESS thresholds are: at 10% of 100 runs the estimate
#: rests on about ten of them.
ESS_FRACTION_MIN = 0.1


class AISResult(NamedTuple):
    """Outcome of :func:`ais` or :func:`reverse_ais`.

    Attributes:
        log_z: estimate of :math:`\\log Z` (0-dim tensor).
        stderr: standard error of ``log_z`` (0-dim tensor): delta-method for :func:`ais`,
            the standard error of a mean of logs for :func:`reverse_ais`.
        log_weights: log importance weight of every run, shape ``(num_chains,)``.
        ess: effective sample size of the normalised weights (0-dim float64 tensor, between
            1 and ``num_chains``); see :func:`effective_sample_size`.
        log_z_floor: :func:`log_partition_floor` of the states at hand (0-dim float64;
            NaN for Gaussian units, where no such bound exists).
    """

    log_z: torch.Tensor
    stderr: torch.Tensor
    log_weights: torch.Tensor
    ess: torch.Tensor
    log_z_floor: torch.Tensor = torch.tensor(math.nan, dtype=torch.float64)

    @property
    def ess_fraction(self) -> float:
        """``ess / num_chains``: 1 for equal weights, ``1 / num_chains`` for one dominant run."""
        return float(self.ess) / self.log_weights.numel()

    @property
    def below_floor(self) -> bool:
        """``log_z`` is more than 3 standard errors below ``log_z_floor``, a certain lower
        bound on :math:`\\log Z`: the estimate is wrong, whatever ``stderr`` says."""
        floor = float(self.log_z_floor)
        if math.isnan(floor):
            return False
        return float(self.log_z) + 3.0 * float(self.stderr) < floor


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
    (Bernoulli) or centred at the RBM's own visible bias (Gaussian). ``data`` has shape
    ``(n, n_visible)``; the result ``(n_visible,)`` is in the RBM's dtype and on its device.
    The same bias is :func:`pyrogen.rbm.fit`'s initial visible bias (Hinton 2010, section 8).

    Example:
        >>> rbm = RBM(3, 2)
        >>> data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        >>> base_rate_bias(rbm, data)  # log-odds of 2.5/3, 0.5/3, 1.5/3
        tensor([ 1.6094, -1.6094,  0.0000])
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


def _visible_terms(
    rbm: RBM, v: torch.Tensor, base_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a(v), q_B-part)``: the base's and the target's visible log terms, float64."""
    v64 = v.double()
    if rbm.is_gaussian:
        base_term = -0.5 * ((v64 - base_bias.double()) ** 2).sum(-1) / rbm.sigma**2
    else:
        base_term = v64 @ base_bias.double()
    return base_term, -visible_term(rbm, v).double()


def _log_unnormalised_from_logits(
    rbm: RBM, v: torch.Tensor, logits: torch.Tensor, beta: float, base_bias: torch.Tensor
) -> torch.Tensor:
    base_term, target_term = _visible_terms(rbm, v, base_bias)
    coupling = F.softplus(beta * logits.double()).sum(-1)
    return (1.0 - beta) * base_term + beta * target_term + coupling


def _increment(
    rbm: RBM,
    v: torch.Tensor,
    logits: torch.Tensor,
    cur: float,
    prev: float,
    base_bias: torch.Tensor,
) -> torch.Tensor:
    r""":math:`\log p_{cur}^*(v) - \log p_{prev}^*(v)` in float64, from one set of logits.

    The difference is formed term by term (visible terms scaled by ``cur - prev``, couplings
    as a difference of softplus values in float64), not as a difference of two large totals.
    """
    base_term, target_term = _visible_terms(rbm, v, base_bias)
    x = logits.double()
    coupling = (F.softplus(cur * x) - F.softplus(prev * x)).sum(-1)
    return (cur - prev) * (target_term - base_term) + coupling


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


def _anneal(
    rbm: RBM,
    v: torch.Tensor,
    beta_list: list[float],
    base_bias: torch.Tensor,
    generator: torch.Generator | None,
    progress: bool,
    desc: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Run the chains ``v`` through the sequence ``beta_list`` (:math:`s_0, \dots, s_K`).

    Accumulates :math:`\log w = \sum_{k=1}^{K} \log p_{s_k}^*(v_k) - \log p_{s_{k-1}}^*(v_k)`
    with :math:`v_{k+1} \sim T_{s_k}(v_k, \cdot)`; forward AIS passes the increasing betas,
    reverse AIS the same betas reversed. Returns ``(log_w, v_K)``; ``log_w`` is float64.

    :math:`T_s` is the block-Gibbs sweep :func:`pyrogen.rbm.functional.gibbs_sweep` at
    ``beta`` :math:`s` with the base's bias: it leaves
    :math:`p_s(v, h) \propto e^{(1-s)\,a(v)} e^{-s E(v, h)}`, hence :math:`p_s^*(v)`, invariant.
    """
    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    steps = tqdm(
        range(1, len(beta_list)),
        desc=desc,
        disable=not progress,
        leave=False,
        mininterval=0.5,
        unit="temp",
    )
    for k in steps:
        prev, cur = beta_list[k - 1], beta_list[k]
        logits = hidden_logits(rbm, v)
        log_w += _increment(rbm, v, logits, cur, prev, base_bias)
        if k < len(beta_list) - 1:
            v = gibbs_sweep(rbm, v, generator, cur, base_bias, logits)[0]
    return log_w, v


def salakhutdinov_murray_betas() -> torch.Tensor:
    r"""The inverse-temperature schedule of Salakhutdinov & Murray (2008), float64.

    Steps of :math:`10^{-3}` from 0 to 0.5, :math:`10^{-4}` from 0.5 to 0.9 and
    :math:`10^{-5}` from 0.9 to 1: 14,501 values (14,500 intermediate transitions), the
    schedule they used for 784 x 500 MNIST RBMs. It is the default of :func:`ais` and
    :func:`reverse_ais`.

    Example:
        >>> betas = salakhutdinov_murray_betas()
        >>> betas.numel(), float(betas[0]), float(betas[-1])
        (14501, 0.0, 1.0)
    """
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, 501, dtype=torch.float64)[:-1],
            torch.linspace(0.5, 0.9, 4001, dtype=torch.float64)[:-1],
            torch.linspace(0.9, 1.0, 10001, dtype=torch.float64),
        ]
    )


def _schedule(num_temperatures: int | None, betas: torch.Tensor | None) -> torch.Tensor:
    if betas is not None:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 2 or betas[0] != 0 or betas[-1] != 1 or (betas.diff() <= 0).any():
            raise ValueError("betas must increase strictly from 0 to 1 with at least 2 entries")
        return betas
    if num_temperatures is None:
        return salakhutdinov_murray_betas()
    check_positive_int(num_temperatures, "num_temperatures", minimum=2)
    return torch.linspace(0.0, 1.0, num_temperatures, dtype=torch.float64)


def _base(rbm: RBM, base: torch.Tensor | None, data: torch.Tensor | None) -> torch.Tensor:
    if base is None:
        return base_rate_bias(rbm, data)
    check_tensor(base, "base", ndim=1, last_dim=rbm.n_visible)
    return base.to(rbm.weight.detach())


def _log_z_base(rbm: RBM, base_bias: torch.Tensor) -> torch.Tensor:
    """:math:`\\log Z_A` of the base-rate model (float64, on the CPU), hidden units included."""
    if rbm.is_gaussian:
        log_z = torch.tensor(
            0.5 * rbm.n_visible * math.log(2 * math.pi * rbm.sigma**2), dtype=torch.float64
        )
    else:
        log_z = F.softplus(base_bias.double()).sum().cpu()
    # With beta = 0 the coupling term is n_hidden * log 2 for every v; Z_A includes it.
    return log_z + rbm.n_hidden * math.log(2.0)


@torch.no_grad()
def log_partition_floor(rbm: RBM, *states: torch.Tensor | None) -> torch.Tensor:
    r"""A deterministic lower bound on :math:`\log Z` from any binary states at hand.

    For any set :math:`S` of *distinct* visible states,
    :math:`Z = \sum_v e^{-F(v)} \ge \sum_{v \in S} e^{-F(v)}`, so

    .. math:: \log Z \;\ge\; \operatorname{logsumexp}_{v \in S} \big(-F(v)\big).

    The rows of all ``states`` (each of shape ``(n, n_visible)``; ``None`` entries are
    skipped) are de-duplicated first. An estimate of :math:`\log Z` below this value is wrong
    whatever its standard error says. Bernoulli visible units only (for Gaussian units
    :math:`e^{-F}` is a density, and no such bound holds); returns a 0-dim float64 tensor,
    :math:`-\infty` when no state is given.

    Example:
        >>> from pyrogen.rbm import binary_states
        >>> rbm = RBM(4, 3)
        >>> every_state = binary_states(4)
        >>> bool(torch.isclose(log_partition_floor(rbm, every_state, every_state),
        ...                    rbm.log_partition().double(), atol=1e-5))
        True
    """
    if rbm.is_gaussian:
        raise ValueError("log_partition_floor needs Bernoulli visible units (states with mass)")
    given = [s for s in states if s is not None]
    if not given:
        return torch.tensor(-math.inf, dtype=torch.float64)
    for i, s in enumerate(given):
        rbm.check_visible(s, f"states[{i}]")
    param = rbm.weight.detach()
    rows = torch.cat([s.reshape(-1, rbm.n_visible).to(param) for s in given])
    unique = torch.unique(rows, dim=0)
    neg_f = torch.cat([-free_energy(rbm, chunk).double() for chunk in unique.split(4096)])
    return torch.logsumexp(neg_f, 0).cpu()


def _summarise(
    log_w: torch.Tensor,
    log_z: torch.Tensor,
    stderr: torch.Tensor,
    floor: torch.Tensor,
    dtype: torch.dtype,
) -> AISResult:
    return AISResult(
        log_z=log_z.to(dtype),
        stderr=torch.as_tensor(stderr).to(dtype),
        log_weights=log_w,
        ess=effective_sample_size(log_w),
        log_z_floor=floor,
    )


def _warn_low_ess(result: AISResult, what: str, num_temperatures: int) -> None:
    if not result.ess_fraction >= ESS_FRACTION_MIN:
        warn_unreliable(
            f"{what} of log Z ({float(result.log_z):.4g} +/- {float(result.stderr):.2g}): "
            f"effective sample size of the importance weights {float(result.ess):.3g} of "
            f"{result.log_weights.numel()} runs ({result.ess_fraction:.1%}, threshold "
            f"{ESS_FRACTION_MIN:.0%}); the estimate rests on a few runs and its standard error "
            f"is unreliable: use more temperatures (now {num_temperatures}) or more chains",
            stacklevel=4,  # past the helper, the estimator and torch.no_grad, to the caller
        )


def _warn_below_floor(result: AISResult, what: str) -> None:
    if result.below_floor:
        warn_unreliable(
            f"{what} of log Z is {float(result.log_z):.4g} +/- {float(result.stderr):.2g}, below "
            f"logsumexp(-F(v)) = {float(result.log_z_floor):.4g} over distinct states at hand, "
            f"a certain lower bound on log Z: the estimate is wrong (the runs missed the "
            f"model's modes) and log-likelihoods computed with it are too high; do not report "
            f"it. Use log_likelihood_bounds, more temperatures, or a base fitted to the data",
            stacklevel=4,
        )


@torch.no_grad()
def ais(
    rbm: RBM,
    num_chains: int = 100,
    num_temperatures: int | None = None,
    base: torch.Tensor | None = None,
    data: torch.Tensor | None = None,
    seed: int | None = None,
    betas: torch.Tensor | None = None,
    progress: bool = False,
) -> AISResult:
    """Estimate :math:`\\log Z` of ``rbm`` by annealed importance sampling.

    A stochastic *lower* bound: :math:`E[\\hat Z] = Z`, so :math:`E[\\log \\hat Z] \\le \\log Z`,
    and on a peaked model whose runs miss modes the shortfall can be tens of nats while the
    standard error stays small. Pair it with :func:`reverse_ais` (an upper estimate) through
    :func:`log_likelihood_bounds` before reporting a log-likelihood.

    Args:
        rbm: the target model (either unit type).
        num_chains: independent AIS runs :math:`M` (batched in one tensor).
        num_temperatures: number :math:`K` of equally spaced inverse temperatures; ``None``
            (default): :func:`salakhutdinov_murray_betas` (14,501 values).
        base: visible bias of the base-rate model, shape ``(n_visible,)``; by default
            fitted to ``data`` with :func:`base_rate_bias`.
        data: training data, shape ``(n, n_visible)``: fits the base rate and, for binary
            units, enters the sanity bound :func:`log_partition_floor` with the runs' final
            states.
        seed: seed of the run's ``torch.Generator`` (on the model's device); the global RNG
            is left untouched. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        betas: explicit increasing schedule from 0 to 1 (overrides ``num_temperatures``).
        progress: show a tqdm bar over the temperatures (Ctrl-C interrupts).

    Returns:
        :class:`AISResult` with ``log_z``, ``stderr``, per-run ``log_weights``, their
        effective sample size ``ess`` and ``log_z_floor``.

    Warns:
        ConvergenceWarning: when ``ess`` is below ``ESS_FRACTION_MIN`` (10%) of
            ``num_chains`` (the estimate rests on a few runs and ``stderr`` is unreliable),
            and when ``log_z`` is below ``log_z_floor`` (the estimate is certainly wrong).

    Example:
        >>> rbm = RBM(64, 200)
        >>> result = ais(rbm, num_chains=50, num_temperatures=200, seed=0)
        >>> float(result.stderr) < 0.1
        True
    """
    check_positive_int(num_chains, "num_chains")
    param = rbm.weight.detach()
    betas = _schedule(num_temperatures, betas)
    base_bias = _base(rbm, base, data)
    generator = make_generator(seed, param.device)
    log_z_base = _log_z_base(rbm, base_bias)

    beta_list = betas.tolist()
    v = _sample_base(rbm, base_bias, num_chains, generator)
    log_w, v = _anneal(rbm, v, beta_list, base_bias, generator, progress, "AIS")
    log_w = log_w.cpu()
    log_mean_w = torch.logsumexp(log_w, 0) - math.log(num_chains)
    # sd(w) / mean(w), computed with weights rescaled by their maximum.
    rel = torch.exp(log_w - log_w.max())
    stderr = (
        rel.std(unbiased=True) / (rel.mean() * math.sqrt(num_chains))
        if num_chains > 1
        else torch.tensor(math.inf)
    )
    floor = (
        torch.tensor(math.nan, dtype=torch.float64)
        if rbm.is_gaussian
        else log_partition_floor(rbm, data, v)
    )
    result = _summarise(log_w, log_z_base + log_mean_w, stderr, floor, param.dtype)
    _warn_low_ess(result, "AIS estimate", len(beta_list))
    _warn_below_floor(result, "AIS estimate")
    return result


@torch.no_grad()
def reverse_ais(
    rbm: RBM,
    data: torch.Tensor,
    num_chains: int = 100,
    num_temperatures: int | None = None,
    base: torch.Tensor | None = None,
    train: torch.Tensor | None = None,
    seed: int | None = None,
    betas: torch.Tensor | None = None,
    progress: bool = False,
) -> AISResult:
    r"""A conservative (stochastic *upper*) estimate of :math:`\log Z` by reverse annealing.

    RAISE (Burda, Grosse & Salakhutdinov 2015, AISTATS). Forward AIS defines a generative
    model :math:`p_{ann}`: the distribution of its final state. Started *at a data point*
    :math:`v` and run backwards, from :math:`\beta = 1` to the base, the same annealing
    chain gives an unbiased estimate of :math:`p_{ann}(v)`:

    .. math::
        \hat p(v) = \frac{1}{Z_A} \prod_{k=K}^{1} \frac{p_{k-1}^*(v_k)}{p_k^*(v_k)},
        \qquad v_K = v,\; v_{k-1} \sim T_{k-1}(v_k, \cdot),

    so :math:`E[\log \hat p(v)] \le \log p_{ann}(v)`: a stochastic lower bound on the
    held-out log-likelihood of a model that approaches the RBM as the schedule gets finer,
    and which errs on the side of a worse model where AIS errs on the side of a better one.
    Written as a partition function, each run implies
    :math:`\hat\zeta_m = -F(v_m) - \log \hat p(v_m) = \log Z_A - \log w_m`, and

    .. math:: \log \hat Z_{\mathrm{RAISE}} = \frac{1}{M} \sum_m \hat\zeta_m
              = \log Z_A - \overline{\log w},

    with standard error :math:`\operatorname{sd}(\log w) / \sqrt{M}`. Then
    :math:`\overline{-F(v)} - \log \hat Z_{\mathrm{RAISE}}` is the conservative end of the
    log-likelihood bracket (:func:`log_likelihood_bounds`).

    Args:
        rbm: the model (either unit type).
        data: states to start from, shape ``(n, n_visible)``: the held-out examples whose
            log-likelihood is wanted. With ``n >= num_chains`` a seeded random subset of
            ``num_chains`` rows without replacement, otherwise the rows in turn.
        num_chains, num_temperatures, base, seed, betas, progress: as in :func:`ais`.
        train: data for the base rate (default: ``data``).

    Returns:
        :class:`AISResult`; ``log_weights`` are the reverse weights :math:`\log w_m`,
        ``ess`` their effective sample size (for information: the estimate is a mean of
        logs, not a weighted mean).

    Warns:
        ConvergenceWarning: when ``log_z`` is below :func:`log_partition_floor` of ``data``
            and ``train`` (it cannot then be an upper estimate).

    Example:
        >>> rbm = RBM(8, 4)
        >>> v = torch.bernoulli(torch.full((20, 8), 0.5))
        >>> up = reverse_ais(rbm, v, num_chains=20, num_temperatures=100, seed=0)
        >>> bool(abs(up.log_z - rbm.log_partition()) < 0.05)
        True
    """
    check_positive_int(num_chains, "num_chains")
    rbm.check_visible(data, "data")
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(
            f"data must have shape (n, {rbm.n_visible}) with n >= 1, got {tuple(data.shape)}"
        )
    param = rbm.weight.detach()
    betas = _schedule(num_temperatures, betas)
    base_bias = _base(rbm, base, data if train is None else train)
    generator = make_generator(seed, param.device)
    log_z_base = _log_z_base(rbm, base_bias)

    n = data.shape[0]
    if n >= num_chains:
        pick = torch.randperm(n, generator=generator, device=param.device)[:num_chains]
    else:
        pick = torch.arange(num_chains, device=param.device) % n
    v = data.to(param)[pick]
    beta_list = betas.flip(0).tolist()
    log_w, _ = _anneal(rbm, v, beta_list, base_bias, generator, progress, "reverse AIS")
    log_w = log_w.cpu()
    stderr = (
        log_w.std(unbiased=True) / math.sqrt(num_chains)
        if num_chains > 1
        else torch.tensor(math.inf)
    )
    floor = (
        torch.tensor(math.nan, dtype=torch.float64)
        if rbm.is_gaussian
        else log_partition_floor(rbm, data, train)
    )
    result = _summarise(log_w, log_z_base - log_w.mean(), stderr, floor, param.dtype)
    _warn_below_floor(result, "reverse AIS estimate")
    return result
