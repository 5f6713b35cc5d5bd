r"""Gaussian visible units with :math:`\sigma \ne 1`: every sigma factor, checked from the energy.

The energy (``pyrogen/rbm/model.py``) is

.. math:: E(v, h) = \frac{\lVert v - b\rVert^2}{2\sigma^2} - c^\top h - (v/\sigma)^\top W h.

Everything else is derived here from it, numerically and independently of the code under
test: :math:`p(v | h)` from the gradient and Hessian of :math:`E` in :math:`v` (it is exactly
quadratic), :math:`P(h | v)` by normalising :math:`e^{-E(v, h)}` over all :math:`2^H` hidden
states, :math:`\log Z` by integrating :math:`\sum_h e^{-E}` on a grid. Completing the square,

.. math:: -E(v, h) = -\frac{\lVert v - \mu_h\rVert^2}{2\sigma^2} + \ell_h, \quad
          \mu_h = b + \sigma W h, \quad
          \ell_h = c^\top h + b^\top W h / \sigma + \tfrac12 \lVert W h\rVert^2,

so :math:`p(v) = \sum_h \pi_h \mathcal N(v; \mu_h, \sigma^2 I)` with
:math:`\pi_h \propto e^{\ell_h}` and :math:`Z = (2\pi\sigma^2)^{n_v/2} \sum_h e^{\ell_h}`
(the grid test checks this derivation). Sampler statistics are compared with these exact values
within ``Z_SCORE = 4.5`` Monte Carlo standard errors (two-sided normal tail 6.8e-6 per
statistic; the about 100 statistics below fail together with probability about 7e-4 per
run, under the 1/number-of-tests budget of the suite). Sigma is a scalar (one value for every
unit); per-unit sigma is not supported and is refused.
"""

from __future__ import annotations

import math
import warnings

import pyro.poutine as poutine
import pytest
import torch
from scipy import stats

from pyrogen.convergence import ConvergenceWarning
from pyrogen.infer import BlockGibbs
from pyrogen.infer.block_gibbs import (
    BlockGibbsState,
    block_gibbs_step,
    hidden_logits,
    log_transition_prob,
    visible_statistic,
)
from pyrogen.rbm import RBM, ais, binary_states
from pyrogen.seeding import forked_global_rng, make_generator

DT = torch.float64
SIGMAS = [0.5, 2.0]
Z_SCORE = 4.5
#: Chi-square tail probability at which the hidden-state counts are rejected.
CHI2_ALPHA = 1e-5

# A 3 x 3 model whose mixture weights pi_h are all between 0.08 and 0.22 at both sigmas, so
# that every component is visited often and every sigma factor moves the statistics.
W3 = torch.tensor([[0.8, -0.5, 0.3], [-0.4, 0.7, 0.6], [0.5, 0.4, -0.9]], dtype=DT)
B3 = torch.tensor([0.2, -0.3, 0.1], dtype=DT)
C3 = torch.tensor([-0.3, 0.2, -0.1], dtype=DT)


def gaussian_rbm(
    weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor, sigma: float
) -> RBM:
    with forked_global_rng(0):  # RBM() draws initial weights globally; they are replaced
        rbm = RBM(*weight.shape, likelihood="gaussian", sigma=sigma, dtype=weight.dtype)
    with torch.no_grad():
        rbm.weight.copy_(weight)
        rbm.visible_bias.copy_(visible_bias)
        rbm.hidden_bias.copy_(hidden_bias)
    return rbm.requires_grad_(False)


def random_gaussian_rbm(n_visible: int, n_hidden: int, sigma: float, scale: float, seed: int):
    g = make_generator(seed)
    return gaussian_rbm(
        scale * torch.randn(n_visible, n_hidden, generator=g, dtype=DT),
        scale * torch.randn(n_visible, generator=g, dtype=DT),
        scale * torch.randn(n_hidden, generator=g, dtype=DT),
        sigma,
    )


def documented_energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The module docstring's E(v, h), written out here (broadcasts over batch dims)."""
    w, b, c, s = rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.sigma
    quadratic = ((v - b) ** 2).sum(-1) / (2 * s**2)
    return quadratic - (h * c).sum(-1) - ((v / s) @ w * h).sum(-1)


def gaussian_of_energy(rbm: RBM, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of p(v | h) proportional to exp(-E(v, h)), from E's derivatives.

    E is exactly quadratic in v, so its Hessian P is the precision and one Newton step from
    any point lands on the mean: mu = v0 - P^{-1} grad E(v0).
    """
    v0 = torch.linspace(-1.0, 1.0, rbm.n_visible, dtype=DT)
    v = v0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rbm.energy(v, h), v)
    precision = torch.autograd.functional.hessian(lambda x: rbm.energy(x, h), v0)
    mean = v0 - torch.linalg.solve(precision, grad)
    return mean.detach(), torch.linalg.inv(precision)


def hidden_posterior_by_enumeration(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """P(h | v) for every hidden state, shape ``(batch, 2**H)``, by normalising exp(-E)."""
    hs = binary_states(rbm.n_hidden, dtype=DT)
    return torch.softmax(-rbm.energy(v[:, None, :], hs[None]), dim=1)


def exact_mixture(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log_weights l_h (2**H,), means mu_h (2**H, n_v), hidden states (2**H, H))`` of
    the completed square in the module docstring."""
    hs = binary_states(rbm.n_hidden, dtype=DT)
    w, b, c, s = rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.sigma
    wh = hs @ w.T
    return hs @ c + wh @ b / s + 0.5 * (wh**2).sum(-1), b + s * wh, hs


def mixture_log_partition(rbm: RBM) -> torch.Tensor:
    log_weights, _, _ = exact_mixture(rbm)
    gauss = 0.5 * rbm.n_visible * math.log(2 * math.pi * rbm.sigma**2)
    return torch.logsumexp(log_weights, 0) + gauss


def assert_within_mcse(estimate, truth, stderr, what: str) -> None:
    z = ((estimate - truth) / stderr).abs()
    assert bool((z < Z_SCORE).all()), f"{what}: max |z| = {float(z.max()):.2f} >= {Z_SCORE}"


# ------------------------------------------------------------------------------ (a) energy
@pytest.mark.parametrize("sigma", SIGMAS)
def test_energy_is_the_documented_formula(sigma):
    rbm = random_gaussian_rbm(4, 3, sigma, scale=0.7, seed=1)
    v = torch.randn(6, 4, generator=make_generator(2), dtype=DT)
    hs = binary_states(3, dtype=DT)
    got = rbm.energy(v[:, None, :], hs[None])
    torch.testing.assert_close(
        got, documented_energy(rbm, v[:, None, :], hs[None]), rtol=0, atol=1e-12
    )


# ------------------------------------------------------------------ (a) the conditionals
@pytest.mark.parametrize("sigma", SIGMAS)
def test_visible_conditional_is_the_gaussian_of_the_energy(sigma):
    """p(v | h): mean b + sigma W h and covariance sigma^2 I, read off E's derivatives, for
    every hidden state; RBM.visible_mean and BlockGibbs' visible_statistic agree with it."""
    rbm = random_gaussian_rbm(4, 3, sigma, scale=0.7, seed=3)
    hs = binary_states(3, dtype=DT)
    moments = [gaussian_of_energy(rbm, h) for h in hs]
    means = torch.stack([mean for mean, _ in moments])
    for _, cov in moments:
        torch.testing.assert_close(cov, sigma**2 * torch.eye(4, dtype=DT), rtol=1e-10, atol=1e-12)
    # One state at a time, a (8, 3) batch and a (2, 4, 3) batch: the code has a path for each.
    for h, mean in zip(hs, means, strict=True):
        torch.testing.assert_close(rbm.visible_mean(h), mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(rbm.visible_mean(hs), means, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        rbm.visible_mean(hs.reshape(2, 4, 3)), means.reshape(2, 4, 4), rtol=0, atol=1e-10
    )
    torch.testing.assert_close(visible_statistic(rbm, hs), means, rtol=0, atol=1e-10)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_visible_samples_have_the_energy_mean_and_sd(sigma):
    """RBM.sample_visible draws N(mean, sigma^2): sample mean and variance per unit within
    4.5 standard errors (sigma / sqrt(n) and sigma^2 sqrt(2 / n))."""
    rbm = random_gaussian_rbm(4, 3, sigma, scale=0.7, seed=4)
    h = torch.tensor([1.0, 0.0, 1.0], dtype=DT)
    mean, _ = gaussian_of_energy(rbm, h)
    n = 20_000
    v = rbm.sample_visible(h.expand(n, 3), generator=make_generator(5))
    assert_within_mcse(v.mean(0), mean, sigma / math.sqrt(n), "mean of v | h")
    variance = ((v - mean) ** 2).mean(0)
    assert_within_mcse(variance, sigma**2, sigma**2 * math.sqrt(2 / n), "variance of v | h")


@pytest.mark.parametrize("sigma", SIGMAS)
def test_hidden_conditional_is_the_normalised_energy(sigma):
    """P(h | v) by enumeration of exp(-E): it factorises, and its marginals are what
    RBM.hidden_probs and BlockGibbs' hidden_logits (c + (v / sigma) W) give."""
    rbm = random_gaussian_rbm(4, 3, sigma, scale=0.7, seed=6)
    v = 2.0 * torch.randn(8, 4, generator=make_generator(7), dtype=DT)
    posterior = hidden_posterior_by_enumeration(rbm, v)  # (8, 8)
    hs = binary_states(3, dtype=DT)
    marginals = posterior @ hs
    torch.testing.assert_close(rbm.hidden_probs(v), marginals, rtol=0, atol=1e-12)
    torch.testing.assert_close(rbm.hidden_probs(v[0]), marginals[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(
        rbm.hidden_probs(v.reshape(2, 4, 4)), marginals.reshape(2, 4, 3), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(torch.sigmoid(hidden_logits(rbm, v)), marginals, rtol=0, atol=1e-12)
    product = torch.where(hs[None] > 0, marginals[:, None], 1 - marginals[:, None]).prod(-1)
    torch.testing.assert_close(product, posterior, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_log_transition_prob_is_the_energy_conditionals(sigma):
    """log P(h' | v) + log p(v' | h') with both factors normalised from the energy: P(h' | v)
    by enumeration, p(v' | h') = exp(-E(v', h')) / integral, the Gaussian integral from E's
    Hessian (exact for a quadratic): exp(-E(mu, h')) (2 pi)^{n/2} det(P)^{-1/2}."""
    rbm = random_gaussian_rbm(4, 3, sigma, scale=0.7, seed=8)
    g = make_generator(9)
    state = BlockGibbsState(torch.randn(5, 4, generator=g, dtype=DT), torch.zeros(5, 3, dtype=DT))
    new = block_gibbs_step(rbm, state, g)
    codes = (new.hidden * 2 ** torch.arange(3, dtype=DT)).sum(-1).long()
    log_p_h = hidden_posterior_by_enumeration(rbm, state.visible)[torch.arange(5), codes].log()
    log_p_v = []
    for v_new, h_new in zip(new.visible, new.hidden, strict=True):
        mean, cov = gaussian_of_energy(rbm, h_new)
        log_integral = (
            -rbm.energy(mean, h_new) + 0.5 * 4 * math.log(2 * math.pi) + 0.5 * torch.logdet(cov)
        )
        log_p_v.append(-rbm.energy(v_new, h_new) - log_integral)
    expected = log_p_h + torch.stack(log_p_v)
    torch.testing.assert_close(log_transition_prob(rbm, state, new), expected, rtol=0, atol=1e-10)


# ------------------------------------------------------- (b) BlockGibbs against the mixture
@pytest.mark.parametrize("sigma", SIGMAS)
def test_block_gibbs_matches_the_exact_mixture(sigma):
    """20,000 vectorised chains of BlockGibbs on the 3 x 3 model, 100 sweeps from the
    kernel's own start (the chains forget it within about 5 sweeps), last state of each chain:
    independent draws of (v, h). Checked against the exact mixture: the counts of h (chi-square,
    7 degrees of freedom), E[v | h] for every h, the pooled variance of v around mu_h, and the
    marginal mean and covariance of v (plug-in standard errors of the sample moments)."""
    rbm = gaussian_rbm(W3, B3, C3, sigma)
    log_weights, means, _ = exact_mixture(rbm)
    pi = torch.softmax(log_weights, 0)
    kernel = BlockGibbs(rbm, target="joint")
    g = make_generator(10)
    state = kernel.init_chains(20_000, generator=g)
    for _ in range(100):
        state, _ = kernel.step_chains(state, generator=g)
    v, h = state.visible, state.hidden
    n = v.shape[0]
    codes = (h * 2 ** torch.arange(3, dtype=DT)).sum(-1).long()

    counts = torch.bincount(codes, minlength=8).double()
    chi2 = float(((counts - n * pi) ** 2 / (n * pi)).sum())
    assert chi2 < stats.chi2.isf(CHI2_ALPHA, df=7), f"hidden states: chi2 = {chi2:.1f}"

    for code in range(8):
        group = v[codes == code]
        se = sigma / math.sqrt(group.shape[0])
        assert_within_mcse(group.mean(0), means[code], se, f"E[v | h = state {code}]")
    pooled = ((v - means[codes]) ** 2).mean(0)
    assert_within_mcse(pooled, sigma**2, sigma**2 * math.sqrt(2 / n), "variance of v | h")

    mean = pi @ means
    cov = (
        sigma**2 * torch.eye(3, dtype=DT)
        + (means * pi[:, None]).T @ means
        - torch.outer(mean, mean)
    )
    assert_within_mcse(v.mean(0), mean, v.std(0) / math.sqrt(n), "E[v]")
    centred = v - v.mean(0)
    products = centred[:, :, None] * centred[:, None, :]  # (n, 3, 3)
    upper = torch.triu_indices(3, 3)
    sample_cov = products.mean(0)[upper[0], upper[1]]
    se_cov = products.std(0)[upper[0], upper[1]] / math.sqrt(n)
    assert_within_mcse(sample_cov, cov[upper[0], upper[1]], se_cov, "Cov[v]")


# -------------------------------------------------------------------- (c) exact log Z
@pytest.mark.parametrize("sigma", SIGMAS)
def test_log_partition_equals_grid_integration_of_the_energy(sigma):
    """Z = integral of sum_h exp(-E(v, h)) dv on a 2-D grid (rectangle rule: spectrally
    accurate for a smooth integrand that vanishes at the ends; here 12 sigma beyond every
    component mean and 16 points per sigma), with E written out in this file."""
    rbm = random_gaussian_rbm(2, 3, sigma, scale=0.7, seed=11)
    _, means, hs = exact_mixture(rbm)
    low, high = float(means.min()) - 12 * sigma, float(means.max()) + 12 * sigma
    step = sigma / 16
    axis = torch.arange(low, high + step, step, dtype=DT)
    points = torch.cartesian_prod(axis, axis)  # (m, 2)
    log_terms = torch.stack([-documented_energy(rbm, points, h) for h in hs])  # (8, m)
    log_z = torch.logsumexp(log_terms.flatten(), 0) + 2 * math.log(step)
    torch.testing.assert_close(rbm.log_partition(), log_z, rtol=0, atol=1e-9)
    torch.testing.assert_close(mixture_log_partition(rbm), log_z, rtol=0, atol=1e-9)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_log_partition_equals_the_sum_of_gaussian_integrals(sigma):
    """At 6 visible and 5 hidden units (no grid possible): the closed form of this file."""
    rbm = random_gaussian_rbm(6, 5, sigma, scale=0.6, seed=12)
    torch.testing.assert_close(rbm.log_partition(), mixture_log_partition(rbm), rtol=0, atol=1e-10)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_log_prob_and_pyro_models_carry_sigma(sigma):
    """log_prob is the log density of the exact mixture sum_h pi_h N(v; mu_h, sigma^2 I),
    pointwise, and the Pyro models' log joints are -F(v) and -E(v, h) (their N(b, sigma^2)
    base distributions cancel exactly)."""
    rbm = random_gaussian_rbm(3, 3, sigma, scale=0.7, seed=13)
    log_weights, means, hs = exact_mixture(rbm)
    v = means[3] + sigma * torch.randn(5, 3, generator=make_generator(14), dtype=DT)
    normal = torch.distributions.Normal(means[None], sigma)  # (1, 8, 3)
    mixture = torch.logsumexp(
        torch.log_softmax(log_weights, 0) + normal.log_prob(v[:, None]).sum(-1), dim=1
    )
    torch.testing.assert_close(rbm.log_prob(v), mixture, rtol=0, atol=1e-10)
    for row in v:
        trace = poutine.trace(poutine.condition(rbm.model, {"v": row})).get_trace()
        torch.testing.assert_close(trace.log_prob_sum(), -rbm.free_energy(row), rtol=0, atol=1e-10)
        h = hs[5]
        joint = poutine.trace(poutine.condition(rbm.joint_model, {"v": row, "h": h})).get_trace()
        expected = -documented_energy(rbm, row, h)
        torch.testing.assert_close(joint.log_prob_sum(), expected, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ (d) AIS
@pytest.mark.parametrize("base", ["model", "shifted"])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_ais_matches_the_exact_log_partition(sigma, base):
    """AIS on a 6 x 4 model, from the default base N(b, sigma^2) and from one centred 0.5
    away (which makes the base and target quadratics differ, so that each carries its own
    1 / sigma^2): within 4.5 of its standard errors of the exact log Z, without a
    ConvergenceWarning (the weights' ESS stays above 10% of the runs)."""
    rbm = random_gaussian_rbm(6, 4, sigma, scale=0.5, seed=15)
    offset = None if base == "model" else rbm.visible_bias + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = ais(rbm, num_chains=200, num_temperatures=500, base=offset, seed=16)
    error = float(result.log_z - rbm.log_partition())
    assert abs(error) < Z_SCORE * float(result.stderr), (error, float(result.stderr))
    assert result.ess_fraction > 0.5


@pytest.mark.parametrize("sigma", SIGMAS)
def test_ais_with_two_temperatures_is_importance_sampling_from_the_base(sigma):
    """betas = (0, 1): one importance-sampling step from the base N(b, sigma^2 I) straight to
    the target, so the estimate is unbiased only if the base draws have exactly that sd (at
    many temperatures the chain forgets its start and would hide a wrong one)."""
    rbm = gaussian_rbm(0.4 * W3, B3, C3, sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = ais(rbm, num_chains=20_000, betas=torch.tensor([0.0, 1.0]), seed=20)
    error = float(result.log_z - rbm.log_partition())
    assert abs(error) < Z_SCORE * float(result.stderr), (error, float(result.stderr))


# ------------------------------------------------------------------- 784 visible units
def test_784_visible_units_at_sigma_one_half():
    """The digits' size: shapes and finite values of every conditional, the sigma factors
    checked against the energy's derivatives once, exact log Z against the closed form (10
    hidden units: 1024 states) and a short AIS run against it."""
    sigma = 0.5
    rbm = random_gaussian_rbm(784, 10, sigma, scale=0.05, seed=17)
    g = make_generator(18)
    v = rbm.visible_bias + sigma * torch.randn(4, 784, generator=g, dtype=DT)
    h = rbm.sample_hidden(v, generator=g)
    assert rbm.hidden_probs(v).shape == (4, 10) and h.shape == (4, 10)
    new = block_gibbs_step(rbm, BlockGibbsState(v, h), g)
    assert new.visible.shape == (4, 784) and new.hidden.shape == (4, 10)
    for x in (
        rbm.free_energy(v),
        new.visible,
        log_transition_prob(rbm, BlockGibbsState(v, h), new),
    ):
        assert bool(torch.isfinite(x).all())

    mean, _ = gaussian_of_energy(rbm, h[0])
    torch.testing.assert_close(visible_statistic(rbm, h[:1])[0], mean, rtol=0, atol=1e-9)
    torch.testing.assert_close(rbm.visible_mean(h[0]), mean, rtol=0, atol=1e-9)
    flip = torch.eye(10, dtype=DT)
    on, off = torch.maximum(h[:1], flip), torch.minimum(h[:1], 1 - flip)  # unit j on / off
    logits = rbm.energy(v[:1], off) - rbm.energy(v[:1], on)  # log P(h_j=1|v) / P(h_j=0|v)
    torch.testing.assert_close(hidden_logits(rbm, v[:1])[0], logits, rtol=0, atol=1e-9)

    log_z = rbm.log_partition()
    torch.testing.assert_close(log_z, mixture_log_partition(rbm), rtol=0, atol=1e-8)
    result = ais(rbm, num_chains=50, num_temperatures=100, seed=19)
    assert abs(float(result.log_z - log_z)) < Z_SCORE * float(result.stderr) + 1e-6


# ---------------------------------------------------------------------- sigma's contract
@pytest.mark.parametrize(
    ("sigma", "error"),
    [(torch.full((3,), 0.5), TypeError), (0.0, ValueError), (-1.0, ValueError), (True, TypeError)],
)
def test_sigma_must_be_one_positive_number(sigma, error):
    """Per-unit sigma (a tensor) is not supported: refused, not silently broadcast."""
    with pytest.raises(error, match="sigma"):
        RBM(3, 2, likelihood="gaussian", sigma=sigma)
