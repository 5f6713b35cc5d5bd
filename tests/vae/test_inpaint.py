"""Inpainting held-out digits by MCMC over a trained VAE's latent code."""

from __future__ import annotations

import pytest
import torch
from pyro.ops.stats import split_gelman_rubin

from pyrogen.data import load_digits
from pyrogen.vae import VAE, fit, hidden_log_likelihood, inpaint, marginal_impute
from pyrogen.vae.functional import encode
from pyrogen.vae.inpaint import gibbs_step, init_state

NUM_IMAGES = 4


@pytest.fixture(scope="module")
def digits_vae():
    """One VAE trained on the binarized digits for the whole module (~2 s)."""
    train, test = load_digits()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = VAE(64, 8)
    fit(vae, train, epochs=60, seed=0, progress=False)
    vae.eval()
    x = test[:NUM_IMAGES]
    mask = (torch.arange(64) < 32).expand(NUM_IMAGES, 64)  # top 4 rows observed
    return vae, train, x, mask


def _max_rhat(samples: torch.Tensor) -> float:
    """Largest split R-hat over every image and latent coordinate; samples (chain, draw, ...)."""
    return float(split_gelman_rubin(samples.flatten(2)).max())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "num_samples", "warmup_steps"),
    [("mwg", 3000, 500), ("nuts", 150, 150), ("replica_exchange", 1500, 700)],
)
def test_inference_beats_pixel_marginals_with_converged_chains(
    digits_vae, method, num_samples, warmup_steps
):
    vae, train, x, mask = digits_vae
    baseline = hidden_log_likelihood(marginal_impute(train, x, mask), x, mask)
    result = inpaint(
        vae,
        x,
        mask,
        method=method,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=4,
        seed=0,
    )
    assert result.samples.shape == (4, num_samples, NUM_IMAGES, 8)
    assert _max_rhat(result.samples) < 1.05
    score = hidden_log_likelihood(result.imputed, x, mask)
    assert score > baseline
    torch.testing.assert_close(result.imputed[mask], x[mask], rtol=0, atol=0)
    assert result.idata.posterior["z"].shape == (4, num_samples, NUM_IMAGES, 8)
    assert result.idata.posterior.attrs["method"] == method


def test_pseudo_gibbs_and_seeding(digits_vae):
    vae, _, x, mask = digits_vae
    a = inpaint(vae, x, mask, method="pseudo_gibbs", num_samples=50, warmup_steps=10, seed=3)
    b = inpaint(vae, x, mask, method="pseudo_gibbs", num_samples=50, warmup_steps=10, seed=3)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)
    assert a.idata.posterior.attrs["accept_rate"] == 1.0
    hidden = a.imputed[~mask]
    assert ((hidden > 0) & (hidden < 1)).all()


def test_hidden_pixels_are_never_read(digits_vae):
    """NaN in the holes is allowed and changes nothing."""
    vae, _, x, mask = digits_vae
    holed = torch.where(mask, x, torch.full_like(x, float("nan")))
    a = inpaint(vae, x, mask, num_samples=20, warmup_steps=5, num_chains=2, seed=1)
    b = inpaint(vae, holed, mask, num_samples=20, warmup_steps=5, num_chains=2, seed=1)
    torch.testing.assert_close(a.imputed, b.imputed, rtol=0, atol=0)


def test_mwg_acceptance_probability_is_the_metropolis_hastings_ratio(digits_vae):
    """Recompute one MWG step's acceptance probability from its own random draws."""
    vae, _, x, mask = digits_vae
    x = torch.where(mask, x, torch.zeros_like(x))
    with torch.no_grad():
        state = init_state(vae, x, mask, 3, torch.Generator().manual_seed(0))
        new, accept = gibbs_step(vae, state, x, mask, torch.Generator().manual_seed(1), True)
        loc, scale = encode(vae, state.x)
        noise = torch.randn(loc.shape, generator=torch.Generator().manual_seed(1))
        proposal = loc + scale * noise
        normal = torch.distributions.Normal

        def log_joint(z: torch.Tensor) -> torch.Tensor:
            bern = torch.distributions.Bernoulli(logits=vae.decoder(z))
            return bern.log_prob(state.x).sum(-1) + normal(0.0, 1.0).log_prob(z).sum(-1)

        log_q = lambda z: normal(loc, scale).log_prob(z).sum(-1)  # noqa: E731
        ratio = log_joint(proposal) - log_q(proposal) - log_joint(state.z) + log_q(state.z)
    torch.testing.assert_close(accept, ratio.clamp(max=0).exp(), rtol=1e-4, atol=1e-6)
    assert torch.equal(new.x[:, mask], state.x[:, mask])
    moved = (new.z != state.z).any(-1)
    assert torch.equal(new.z[moved], proposal[moved])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mwg", "replica_exchange"])
def test_matches_quadrature_posterior_of_a_one_dimensional_latent(method):
    """z_dim = 1: p(z | x_o) and p(x_h = 1 | x_o) by quadrature on a fine grid; the
    estimates must agree within 4 Monte Carlo standard errors (ESS-based)."""
    from pyro.ops.stats import effective_sample_size

    torch.manual_seed(2)
    vae = VAE(4, 1, hidden=(8,), dtype=torch.float64)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.mul_(3.0)  # a curved, informative likelihood
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False]])
    grid = torch.linspace(-8, 8, 40001, dtype=torch.float64).unsqueeze(-1)
    with torch.no_grad():
        bern = torch.distributions.Bernoulli(logits=vae.decoder(grid))
        log_post = bern.log_prob(x)[:, :2].sum(-1) - 0.5 * grid.squeeze(-1) ** 2
        weights = torch.softmax(log_post, 0)
        mean_z = float((weights * grid.squeeze(-1)).sum())
        probs_h = (weights.unsqueeze(-1) * bern.probs[:, 2:]).sum(0)
    result = inpaint(
        vae, x, mask, method=method, num_samples=4000, warmup_steps=400, num_chains=8, seed=0
    )
    if method == "replica_exchange":
        assert result.idata.posterior.attrs["round_trips_per_chain"] > 0
    z = result.samples[..., 0, 0]  # (chain, draw)
    ess = float(effective_sample_size(z))
    mcse = float(z.std()) / ess**0.5
    assert abs(float(z.mean()) - mean_z) < 4 * mcse
    with torch.no_grad():
        p_draws = torch.sigmoid(vae.decoder(result.samples[..., 0, :]))[..., 2:]  # (c, d, 2)
    for j in range(2):
        f = p_draws[..., j]
        se = float(f.std()) / float(effective_sample_size(f)) ** 0.5
        assert abs(float(result.imputed[0, 2 + j]) - float(probs_h[j])) < 4 * se + 1e-12


def test_masked_nuts_model_density_is_prior_plus_observed_pixels(digits_vae):
    import pyro.poutine as poutine

    from pyrogen.vae.inpaint import masked_model

    vae, _, x, mask = digits_vae
    z = torch.randn(NUM_IMAGES, 8)
    with torch.no_grad():
        trace = poutine.trace(poutine.condition(masked_model, {"z": z})).get_trace(vae, x, mask)
        bern = torch.distributions.Bernoulli(logits=vae.decoder(z))
        expected = (bern.log_prob(x) * mask).sum() + torch.distributions.Normal(0.0, 1.0).log_prob(
            z
        ).sum()
    torch.testing.assert_close(trace.log_prob_sum(), expected, rtol=1e-5, atol=1e-4)


def test_bad_mask_and_inputs(digits_vae):
    vae, _, x, mask = digits_vae
    with pytest.raises(ValueError, match="mask must have the shape"):
        inpaint(vae, x, mask[:, :32], num_samples=5, warmup_steps=0)
    with pytest.raises(TypeError, match="bool"):
        inpaint(vae, x, mask.float(), num_samples=5, warmup_steps=0)
    with pytest.raises(ValueError, match="method"):
        inpaint(vae, x, mask, method="hmc")
    with pytest.raises(ValueError, match="last dimension"):
        inpaint(vae, x[:, :63], mask[:, :63])
    bad = x.clone()
    bad[0, 0] = 0.5  # observed (top half) and not binary
    with pytest.raises(ValueError, match="binary"):
        inpaint(vae, bad, mask, num_samples=5, warmup_steps=0)
    with pytest.raises(ValueError, match="nothing to score"):
        hidden_log_likelihood(x, x, torch.ones_like(mask))
