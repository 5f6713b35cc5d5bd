"""Super-resolution with a generator prior (pyrogen.gan.superres).

The exact check uses a linear generator ``G(z) = A z`` with a standard normal prior: the
posterior over ``z`` given ``y = pool(A z) + N(0, s^2)`` is Gaussian, so ``E[G(z) | y]`` and
its posterior standard deviation are known in closed form, and the estimate must lie within
4.5 Monte Carlo standard errors (posterior sd / sqrt(min bulk ESS)) of it in every pixel
(a chance failure has probability about 1e-4 over the 48 pixels checked).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.gan import ImplicitModel
from pyrogen.gan.superres import average_pool, bilinear_upsample, psnr, super_resolve


def test_pooling_upsampling_and_psnr():
    x = torch.arange(16.0)
    assert average_pool(x).tolist() == [2.5, 4.5, 10.5, 12.5]
    assert average_pool(torch.ones(3, 5, 64)).shape == (3, 5, 16)
    assert average_pool(torch.ones(2, 784), factor=4).shape == (2, 49)
    flat = torch.full((2, 16), 0.3)
    torch.testing.assert_close(bilinear_upsample(flat), torch.full((2, 64), 0.3))
    assert torch.isclose(psnr(torch.zeros(1, 4), torch.full((1, 4), 0.1)), torch.tensor([20.0]))
    with pytest.raises(ValueError, match="square"):
        average_pool(torch.ones(15))
    with pytest.raises(ValueError, match="divide"):
        average_pool(torch.ones(9), factor=2)


def linear_generator(seed: int = 0) -> ImplicitModel:
    torch.manual_seed(seed)  # the layer draws its initial weights from the global RNG
    layer = torch.nn.Linear(2, 16, bias=False).double()
    return ImplicitModel(layer, latent_dim=2)


def test_linear_generator_posterior_mean_is_exact():
    g = linear_generator()
    a = g.generator.weight.detach()  # (16, 2): G(z) = A z
    pool = average_pool(torch.eye(16, dtype=torch.float64)).T  # (4, 16)
    m = pool @ a  # (4, 2): y = M z + noise
    noise = 0.1
    z_true = torch.tensor([[1.0, -0.5], [-1.5, 0.8], [0.2, 0.3]], dtype=torch.float64)
    y = z_true @ m.T + noise * torch.randn(3, 4, generator=torch.Generator().manual_seed(1),
                                           dtype=torch.float64)  # fmt: skip
    out = super_resolve(g, y, noise_scale=noise, num_chains=4, num_samples=1500,
                        warmup_steps=500, num_replicas=4, seed=0)  # fmt: skip
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + m.T @ m / noise**2)
    mean_z = y @ m @ cov.T / noise**2  # (3, 2)
    exact = mean_z @ a.T  # (3, 16)
    sd = torch.sqrt(torch.einsum("pi,ij,pj->p", a, cov, a))  # (16,)
    assert bool(out.converged.all()), [r.label for r in out.reliability]
    for i, part in enumerate(out.reliability):
        tolerance = 4.5 * sd / part.min_ess_bulk**0.5
        assert bool(((out.estimate[i] - exact[i]).abs() < tolerance).all()), i
    assert out.estimate.shape == (3, 16) and out.betas.shape == (4,)
    assert out.swap_accept_rate.shape == (3,) and bool((out.accept_rate > 0.3).all())
    summary = out.summary()
    assert summary["images"] == 3 and summary["converged"] == 3


def test_too_short_chains_warn_and_are_marked():
    g = linear_generator()
    y = average_pool(g.sample(2, torch.Generator().manual_seed(0)))
    with pytest.warns(ConvergenceWarning, match="super-resolution"):
        out = super_resolve(g, y, num_chains=2, num_samples=5, warmup_steps=5, seed=0)
    assert not bool(out.converged.all())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = super_resolve(g, y, num_chains=2, num_samples=5, warmup_steps=5, seed=0,
                              warn=False, method="mala")  # fmt: skip
    assert quiet.swap_accept_rate.numel() == 0 and quiet.betas.tolist() == [1.0]


def test_same_seed_same_result_and_global_rng_untouched():
    g = linear_generator()
    y = average_pool(g.sample(2, torch.Generator().manual_seed(0)))
    state = torch.get_rng_state()
    kw = dict(num_chains=2, num_samples=20, warmup_steps=10, seed=3, warn=False)
    first, second = super_resolve(g, y, **kw), super_resolve(g, y, **kw)
    assert torch.equal(first.estimate, second.estimate)
    assert torch.equal(torch.get_rng_state(), state)


def test_validation():
    g = linear_generator()
    y = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="generator"):
        super_resolve(torch.nn.Linear(2, 2), y)
    with pytest.raises(ValueError, match="pixels"):
        super_resolve(g, torch.zeros(2, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="method"):
        super_resolve(g, y, method="nuts")
    with pytest.raises(ValueError, match="noise_scale"):
        super_resolve(g, y, noise_scale=0.0)
