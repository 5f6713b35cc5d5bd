"""IWAE / ELBO estimates against the closed-form marginal likelihood of probabilistic PCA.

A VAE with ``hidden=()`` and a Gaussian decoder is probabilistic PCA (Tipping & Bishop 1999):
x = W z + mu + e, e ~ N(0, s^2 I), so p(x) = N(mu, W W^T + s^2 I) exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

from pyrogen.vae import VAE, elbo, fit, log_likelihood


def _exact_log_likelihood(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, W W^T + s^2 I) for the VAE's linear decoder."""
    layer = vae.decoder[0]
    w, mu = layer.weight, layer.bias  # (x_dim, z_dim), (x_dim,)
    s2 = vae.log_sigma.exp() ** 2
    cov = w @ w.T + s2 * torch.eye(vae.x_dim, dtype=w.dtype)
    return torch.distributions.MultivariateNormal(mu, covariance_matrix=cov).log_prob(x)


def _exact_posterior_vae(seed: int = 0) -> tuple[VAE, torch.Tensor]:
    """A linear VAE whose encoder *is* the exact posterior.

    With orthogonal decoder columns, W^T W = diag(d), the posterior of PPCA is diagonal:
    z | x ~ N(diag(1/(d + s^2)) W^T (x - mu), diag(s^2 / (d + s^2))). Then every importance
    weight p(x, z) / q(z | x) equals p(x), so the IWAE estimate is exact for every K.
    """
    g = torch.Generator().manual_seed(seed)
    x_dim, z_dim, s = 5, 2, 0.4
    vae = VAE(x_dim, z_dim, hidden=(), likelihood="gaussian", sigma=s, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns
    mu = torch.randn(x_dim, generator=g, dtype=torch.float64)
    d = (w**2).sum(0)
    gain = w.T / (d + s**2).unsqueeze(-1)  # (z_dim, x_dim)
    std = (s**2 / (d + s**2)).sqrt()
    with torch.no_grad():
        vae.decoder[0].weight.copy_(w)
        vae.decoder[0].bias.copy_(mu)
        enc = vae.encoder[0]
        enc.weight.zero_()
        enc.weight[:z_dim] = gain
        enc.bias[:z_dim] = -gain @ mu
        # raw scale such that softplus(raw) + 1e-5 == std
        target = std - 1e-5
        enc.bias[z_dim:] = target + torch.log(-torch.expm1(-target))
    x = mu + torch.randn(40, z_dim, generator=g, dtype=torch.float64) @ w.T
    x = x + s * torch.randn(40, x_dim, generator=g, dtype=torch.float64)
    return vae, x


@pytest.mark.parametrize("num_samples", [1, 7, 1000])
def test_iwae_is_exact_when_the_encoder_is_the_posterior(num_samples):
    vae, x = _exact_posterior_vae()
    exact = _exact_log_likelihood(vae, x)
    estimate = log_likelihood(vae, x, num_samples=num_samples, seed=0)
    torch.testing.assert_close(estimate, exact, rtol=1e-10, atol=1e-10)


def test_chunking_over_examples_and_samples_is_exact(monkeypatch):
    """Small memory bound: many chunks, running logsumexp; still exact."""
    import pyrogen.vae.likelihood as likelihood

    monkeypatch.setattr(likelihood, "_MAX_ROWS", 7)
    vae, x = _exact_posterior_vae(seed=1)
    estimate = log_likelihood(vae, x[:5], num_samples=50, batch_size=2, seed=0)
    torch.testing.assert_close(estimate, _exact_log_likelihood(vae, x[:5]), rtol=1e-10, atol=1e-10)
    assert elbo(vae, x[:5], num_samples=30, seed=0).shape == (5,)


def test_elbo_analytic_kl_matches_its_definition():
    """elbo() = mean of log p(x|z) over draws minus the closed-form KL, with the same draws."""
    vae, x = _exact_posterior_vae()
    got = elbo(vae, x, num_samples=4, seed=3)
    g = torch.Generator().manual_seed(3)
    loc, scale = vae.encode(x)
    eps = torch.randn((4, *loc.shape), generator=g, dtype=loc.dtype)
    z = loc + scale * eps
    log_px = torch.distributions.Normal(vae.decoder(z), vae.log_sigma.exp()).log_prob(x).sum(-1)
    q = torch.distributions.Normal(loc, scale)
    p = torch.distributions.Normal(torch.zeros_like(loc), torch.ones_like(scale))
    kl = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(got, log_px.mean(0) - kl, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_trained_ppca_vae_iwae_matches_exact_marginal_likelihood():
    """After training, IWAE(K=1000) is within 0.5 nats of the exact log p(x) of the learned
    decoder for every example, and ELBO <= IWAE(10) <= IWAE(1000) <= exact up to MC error."""
    g = torch.Generator().manual_seed(0)
    x_dim, z_dim, n = 6, 2, 1500
    w_true = torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64) * 1.5
    data = torch.randn(n, z_dim, generator=g, dtype=torch.float64) @ w_true.T
    data = data + 0.5 * torch.randn(n, x_dim, generator=g, dtype=torch.float64) + 1.0
    torch.manual_seed(0)
    vae = VAE(x_dim, z_dim, hidden=(), likelihood="gaussian", dtype=torch.float64)
    history = fit(vae, data[:500], epochs=150, batch_size=50, lr=1e-2, seed=0, progress=False)
    assert history.last("elbo") > history["elbo"][0] + 1.0  # it learned
    test = data[500:]
    exact = _exact_log_likelihood(vae, test).detach()
    l1 = elbo(vae, test, num_samples=1, seed=1)
    l10 = log_likelihood(vae, test, num_samples=10, seed=2)
    l1000 = log_likelihood(vae, test, num_samples=1000, seed=3)
    assert (l1000 - exact).abs().max() < 0.5

    def ordered(low: torch.Tensor, high: torch.Tensor) -> bool:
        # Per-example differences of independent estimates; 4 standard errors of their mean
        # (one-sided failure rate ~3e-5 if the ordering holds in expectation).
        d = high - low
        return float(d.mean()) > -4 * float(d.std()) / math.sqrt(d.numel())

    assert ordered(l1, l10)
    assert ordered(l10, l1000)
    assert ordered(l1000, exact)


def test_log_likelihood_input_checks():
    vae, x = _exact_posterior_vae()
    with pytest.raises(ValueError, match="num_samples"):
        log_likelihood(vae, x, num_samples=0)
    with pytest.raises(ValueError, match="last dimension"):
        log_likelihood(vae, x[:, :3])
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(vae, x[0])
    with pytest.raises(TypeError, match="VAE"):
        log_likelihood(object(), x)
