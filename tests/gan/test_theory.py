"""Exact checks of the GAN game on tabulated distributions (Goodfellow et al. 2014, Sec. 4)."""

import itertools
import math

import pytest
import torch

from pyrogen.gan import game_value, jensen_shannon, optimal_discriminator

LOG4 = math.log(4.0)


def _random_pair(seed: int, k: int = 12, zeros: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Normalised exponentials are Dirichlet(1, ..., 1): uniform on the simplex.
    p = -torch.rand(k, generator=g, dtype=torch.float64).log()
    q = -torch.rand(k, generator=g, dtype=torch.float64).log()
    if zeros:  # disjoint pieces of support: D* is exactly 0 or 1 there
        p[:2] = 0.0
        q[2:4] = 0.0
    return p / p.sum(), q / q.sum()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("zeros", [False, True])
def test_value_at_optimal_discriminator_is_minus_log4_plus_twice_jsd(seed, zeros):
    p_data, p_g = _random_pair(seed, zeros=zeros)
    d_star = optimal_discriminator(p_data, p_g)
    c = game_value(p_data, p_g, d_star)
    assert abs(float(c) - (-LOG4 + 2 * float(jensen_shannon(p_data, p_g)))) < 1e-10
    assert float(c) > -LOG4 + 1e-6  # p_g != p_data: strictly above the global minimum


@pytest.mark.parametrize("seed", range(5))
def test_log_odds_keep_the_identity_where_d_star_rounds_to_one(seed):
    p_data, p_g = _random_pair(seed, zeros=True)
    # Generator mass far below epsilon next to data mass: D* = 1 - 1e-20 rounds to 1.
    p_g = p_g.clone()
    p_g[4] = 1e-20
    p_g = p_g / p_g.sum()
    assert float(game_value(p_data, p_g, optimal_discriminator(p_data, p_g))) == -math.inf
    logits = optimal_discriminator(p_data, p_g, logits=True)
    c = game_value(p_data, p_g, logits=logits)
    assert abs(float(c) - (-LOG4 + 2 * float(jensen_shannon(p_data, p_g)))) < 1e-10
    # Both forms agree where the probabilities are representable.
    p_data, p_g = _random_pair(seed)
    by_prob = game_value(p_data, p_g, optimal_discriminator(p_data, p_g))
    by_logit = game_value(p_data, p_g, logits=optimal_discriminator(p_data, p_g, logits=True))
    assert abs(float(by_prob) - float(by_logit)) < 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_optimal_discriminator_maximises_value(seed):
    p_data, p_g = _random_pair(seed)
    d_star = optimal_discriminator(p_data, p_g)
    best = float(game_value(p_data, p_g, d_star))
    g = torch.Generator().manual_seed(100 + seed)
    # Random discriminators and small perturbations of D*: none does better.
    others = torch.rand(500, p_data.numel(), generator=g, dtype=torch.float64)
    near = d_star + 1e-3 * torch.randn(500, p_data.numel(), generator=g, dtype=torch.float64)
    for d in torch.cat([others, near.clamp(1e-9, 1 - 1e-9)]):
        assert float(game_value(p_data, p_g, d)) <= best + 1e-14
    # and D* is a stationary point: dV/dD(x) = p_data/D - p_g/(1-D) = 0 in every cell.
    d = d_star.clone().requires_grad_(True)
    game_value(p_data, p_g, d).backward()
    assert float(d.grad.abs().max()) < 1e-10


@pytest.mark.parametrize("seed", range(3))
def test_global_minimum_iff_generator_matches_data(seed):
    p_data, p_g = _random_pair(seed)
    d_star = optimal_discriminator(p_data, p_data)
    assert torch.equal(d_star, torch.full_like(p_data, 0.5))
    assert abs(float(game_value(p_data, p_data, d_star)) + LOG4) < 1e-12
    # Any p_g != p_data (here a mixture moving towards p_data) stays strictly above -log 4,
    # and C(G) decreases monotonically to -log 4 along the path.
    values = []
    for t in (0.0, 0.5, 0.9, 0.99):
        mix = (1 - t) * p_g + t * p_data
        values.append(float(game_value(p_data, mix, optimal_discriminator(p_data, mix))))
    assert all(v > -LOG4 for v in values)
    assert all(a > b for a, b in itertools.pairwise(values))


def test_jensen_shannon_bounds_and_symmetry():
    p, q = _random_pair(7)
    assert abs(float(jensen_shannon(p, q)) - float(jensen_shannon(q, p))) < 1e-15
    assert float(jensen_shannon(p, p)) == 0.0
    disjoint_p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    disjoint_q = torch.tensor([0.0, 0.0, 0.25, 0.75], dtype=torch.float64)
    assert abs(float(jensen_shannon(disjoint_p, disjoint_q)) - math.log(2)) < 1e-15
    assert 0 < float(jensen_shannon(p, q)) < math.log(2)


def test_optimal_discriminator_values_by_hand():
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.25, 0.75, 0.0], dtype=torch.float64)
    d = optimal_discriminator(p, q)
    assert torch.allclose(d, torch.tensor([1.0, 2 / 3, 0.0, 0.5], dtype=torch.float64))
    # Log-space convention 0 log 0 = 0 keeps the value finite at D in {0, 1}.
    assert math.isfinite(float(game_value(p, q, d)))


def test_theory_input_validation():
    p = torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        optimal_discriminator(torch.tensor([0.5, 0.6]), p)
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon(torch.tensor([1.5, -0.5]), p)
    with pytest.raises(ValueError, match="same shape"):
        jensen_shannon(p, torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        game_value(p, p, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="shape"):
        game_value(p, p, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="exactly one"):
        game_value(p, p)
    with pytest.raises(ValueError, match="exactly one"):
        game_value(p, p, torch.tensor([0.5, 0.5]), logits=torch.zeros(2))
    with pytest.raises(TypeError):
        jensen_shannon([0.5, 0.5], p)
