"""Latent-space inference: ImplicitModel.condition and the DDLS target against closed forms.

With a linear generator :math:`G(z) = Az + b`, :math:`z \\sim N(0, I)` and
:math:`y = G(z) + N(0, s^2 I)`, the posterior is Gaussian with covariance
:math:`S = (I + A^T A / s^2)^{-1}` and mean :math:`S A^T (y - b) / s^2`. With
:math:`G(z) = z` and a linear discriminator logit :math:`d(x) = a^T x + c`, the DDLS target
:math:`N(z; 0, I) e^{d(z)}` is :math:`N(a, I)`. Log joints are checked exactly; samples from
Pyro's NUTS and pyrogen's vectorised MALA within 4 Monte Carlo standard errors per statistic.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS
from pyro.ops.stats import effective_sample_size

from pyrogen.gan import GAN, ImplicitModel, discriminator_energy, discriminator_log_density
from pyrogen.infer import MetropolisHastings, sample

A = torch.tensor([[1.0, 0.5], [0.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
B = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
NOISE = 0.5


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return lin


def _posterior(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + A.T @ A / NOISE**2)
    return cov @ A.T @ (y - B) / NOISE**2, cov


def _log_joint(model, **values) -> torch.Tensor:
    trace = poutine.trace(poutine.condition(model, data=values)).get_trace()
    return trace.log_prob_sum().detach()


def _within_mcse(draws: torch.Tensor, truth: float, z: float = 4.0) -> None:
    """|mean(draws) - truth| < z sd / sqrt(ESS), with ESS from one chain of ``draws``."""
    ess = float(effective_sample_size(draws.reshape(1, -1), chain_dim=0, sample_dim=1))
    mcse = float(draws.std()) / math.sqrt(ess)
    assert abs(float(draws.mean()) - truth) < z * mcse, (float(draws.mean()), truth, mcse, ess)


def test_condition_log_joint_is_the_gaussian_posterior_up_to_a_constant():
    g = ImplicitModel(_linear(A, B), latent_dim=2)
    y = torch.tensor([1.0, 0.5, -0.3], dtype=torch.float64)
    model = g.condition(lambda x: x, y, NOISE)
    mean, cov = _posterior(y)
    exact = dist.MultivariateNormal(mean, cov)
    zs = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    diffs = [float(_log_joint(model, z=z) - exact.log_prob(z)) for z in zs]
    # log p(z, y) - log p(z | y) = log p(y): the same constant for every z.
    assert max(diffs) - min(diffs) < 1e-12
    log_evidence = dist.MultivariateNormal(B, A @ A.T + NOISE**2 * torch.eye(3)).log_prob(y)
    assert abs(diffs[0] - float(log_evidence)) < 1e-10


def test_condition_batched_observations_use_a_plate():
    g = ImplicitModel(_linear(A, B), latent_dim=2)
    y = torch.randn(4, 2, dtype=torch.float64)
    model = g.condition(lambda x: x[..., :2], y, NOISE)
    trace = poutine.trace(model).get_trace()
    assert trace.nodes["z"]["value"].shape == (4, 2)
    assert [f.name for f in trace.nodes["y"]["cond_indep_stack"]] == ["observations"]
    z = torch.randn(4, 2, dtype=torch.float64)
    expected = (
        dist.Normal(0.0, 1.0).log_prob(z).sum()
        + dist.Normal((z @ A.T + B)[:, :2], NOISE).log_prob(y).sum()
    )
    assert abs(float(_log_joint(model, z=z) - expected)) < 1e-12


def test_condition_validation():
    g = ImplicitModel(_linear(A, B), latent_dim=2)
    y = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="forward"):
        g.condition(lambda x: x[..., :2], y, NOISE)
    with pytest.raises(ValueError, match="noise_scale"):
        g.condition(lambda x: x, y, 0.0)
    with pytest.raises(TypeError, match="callable"):
        g.condition("identity", y, NOISE)
    with pytest.raises(ValueError, match="NaN"):
        g.condition(lambda x: x, torch.full((3,), math.nan, dtype=torch.float64), NOISE)


@pytest.mark.slow
def test_condition_posterior_recovers_a_known_latent_with_nuts():
    g = ImplicitModel(_linear(A, B), latent_dim=2)
    z_true = torch.tensor([0.4, -0.8], dtype=torch.float64)
    noise = torch.randn(3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = g.generate(z_true).detach() + NOISE * noise
    mean, cov = _posterior(y)
    # The closed-form posterior covers the latent that generated y (4 posterior sds).
    assert bool(((mean - z_true).abs() < 4 * cov.diagonal().sqrt()).all())
    pyro.set_rng_seed(0)
    mcmc = MCMC(
        NUTS(g.condition(lambda x: x, y, NOISE)), num_samples=1000, warmup_steps=300,
        disable_progbar=True,
    )  # fmt: skip
    mcmc.run()
    z = mcmc.get_samples()["z"]
    for i in range(2):
        _within_mcse(z[:, i], float(mean[i]))
    centred = z - mean
    for i, j in ((0, 0), (1, 1), (0, 1)):
        _within_mcse(centred[:, i] * centred[:, j], float(cov[i, j]))


def _ddls_gan(slope: float, intercept: float) -> GAN:
    generator = ImplicitModel(_linear(torch.eye(1, dtype=torch.float64), torch.zeros(1)), 1)
    disc = _linear(
        torch.tensor([[slope]], dtype=torch.float64), torch.tensor([intercept], dtype=torch.float64)
    )
    return GAN(generator, disc)


def test_discriminator_energy_log_joint_is_prior_plus_logit():
    gan = _ddls_gan(1.5, -0.3)
    model = discriminator_energy(gan)
    for value in (-1.0, 0.2, 2.5):
        z = torch.tensor([value], dtype=torch.float64)
        expected = dist.Normal(0.0, 1.0).log_prob(z).sum() + 1.5 * value - 0.3
        assert abs(float(_log_joint(model, z=z)) - float(expected)) < 1e-12
        log_density = discriminator_log_density(gan, z).detach()
        assert abs(float(log_density) - float(expected)) < 1e-12
    batch = torch.randn(7, 1, dtype=torch.float64)
    assert discriminator_log_density(gan, batch).shape == (7,)
    with pytest.raises(ValueError, match="last dimension 1"):
        discriminator_log_density(gan, torch.zeros(3, 2, dtype=torch.float64))


# ------------------------------------------------- pyrogen's vectorised MALA, many chains
def _final_draws(model, num_chains: int, seed: int) -> torch.Tensor:
    """Last draw of each of ``num_chains`` independent MALA chains: i.i.d. when mixed.

    Not the state at the end of warmup: each chain's adapted step size depends on its own
    path, which biases that state (variance ~0.9 instead of 1 here); 50 steps at the
    frozen step size remove the dependence.
    """
    kernel = MetropolisHastings(model, proposal="mala", step_size=0.3)
    idata = sample(
        kernel, num_chains=num_chains, num_samples=50, warmup_steps=100, seed=seed,
        progress=False,
    )  # fmt: skip
    return torch.as_tensor(idata.posterior["z"].values)[:, -1]


def _iid_within(draws: torch.Tensor, truth: torch.Tensor, z: float = 4.0) -> None:
    """|mean - truth| < z sd / sqrt(n) per column, for independent draws (rows)."""
    mcse = draws.std(0) / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - truth).abs() < z * mcse).all()), (draws.mean(0), truth, mcse)


def test_ddls_target_with_vectorised_mala():
    z = _final_draws(discriminator_energy(_ddls_gan(1.5, -0.3)), 4000, seed=0)[:, 0]
    _iid_within(z.unsqueeze(-1), torch.tensor([1.5], dtype=torch.float64))
    _iid_within(((z - 1.5) ** 2).unsqueeze(-1), torch.tensor([1.0], dtype=torch.float64))


def test_condition_posterior_with_vectorised_mala():
    g = ImplicitModel(_linear(A, B), latent_dim=2)
    y = torch.tensor([1.0, 0.5, -0.3], dtype=torch.float64)
    mean, cov = _posterior(y)
    z = _final_draws(g.condition(lambda x: x, y, NOISE), 4000, seed=1)
    _iid_within(z, mean)
    c = z - mean
    second = torch.stack([c[:, 0] ** 2, c[:, 1] ** 2, c[:, 0] * c[:, 1]], dim=1)
    _iid_within(second, torch.stack([cov[0, 0], cov[1, 1], cov[0, 1]]))
