"""pyrogen.first_principles: exact identities first, then goodness-of-fit tests at fixed seeds.

Each statistical test uses a fixed seed and a level of 1e-3 (or a 5-sigma bound), so with
the dozen such checks here a correct implementation at a fresh seed would fail about 1% of
the time; at the fixed seed the outcome is deterministic.
"""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from pyrogen.first_principles import (
    LinearCongruential,
    box_muller,
    detailed_balance_violation,
    gibbs_chain,
    gibbs_matrix,
    hull_dobell,
    metropolis_hastings_chain,
    metropolis_hastings_matrix,
    stationary_distribution,
)

LEVEL = 1e-3


# --- the generator ----------------------------------------------------------------------------


def test_lcg_block_equals_the_sequential_recurrence():
    lcg = LinearCongruential(seed=12345)
    x, expected = 12345, []
    for _ in range(1000):
        x = (1664525 * x + 1013904223) % 2**32
        expected.append(x)
    assert lcg.integers(1000).tolist() == expected
    assert lcg.state == expected[-1]


def test_lcg_stream_does_not_depend_on_how_it_is_cut():
    whole = LinearCongruential(seed=7).integers(30)
    lcg = LinearCongruential(seed=7)
    parts = torch.cat([lcg.integers(10), lcg.integers((4, 5)).reshape(-1)])
    assert torch.equal(whole, parts)
    assert lcg.integers(0).shape == (0,)


def test_lcg_values_near_the_modulus_do_not_overflow():
    # a and x both near 2**32: a direct int64 product would wrap around.
    a, c, m = 2**32 - 3, 1, 2**32
    lcg = LinearCongruential(seed=2**32 - 1, a=a, c=c, m=m)
    x, expected = 2**32 - 1, []
    for _ in range(100):
        x = (a * x + c) % m
        expected.append(x)
    assert lcg.integers(100).tolist() == expected


@pytest.mark.parametrize(
    ("a", "c", "m"),
    # The last row is Numerical Recipes' generator reduced to a 12-bit modulus.
    [(5, 3, 64), (21, 3, 100), (1664525 % 2**12, 1013904223 % 2**12, 2**12)],
)
def test_full_period_on_small_moduli(a, c, m):
    assert hull_dobell(a, c, m)
    lcg = LinearCongruential(seed=0, a=a, c=c, m=m)
    values = lcg.integers(m + 1)
    assert torch.unique(values[:m]).numel() == m  # every residue once per period
    assert int(values[m]) == int(values[0])


@pytest.mark.parametrize(("a", "c", "m"), [(5, 4, 64), (3, 3, 64), (7, 1, 100)])
def test_hull_dobell_violations_have_short_periods(a, c, m):
    # c even / a - 1 not divisible by 4 / a - 1 not divisible by 5 respectively.
    assert not hull_dobell(a, c, m)
    values = LinearCongruential(seed=0, a=a, c=c, m=m).integers(m)
    assert torch.unique(values).numel() < m


def test_default_generator_is_full_period():
    assert LinearCongruential().has_full_period


def test_lcg_uniforms_pass_kolmogorov_smirnov_and_chi_square():
    u = LinearCongruential(seed=2024).uniform(20_000)
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert scipy.stats.kstest(u.numpy(), "uniform").pvalue > LEVEL
    counts = torch.histc(u, bins=50, min=0, max=1).numpy()
    assert scipy.stats.chisquare(counts).pvalue > LEVEL
    # Successive pairs: chi-square on a 10 x 10 grid of (u_t, u_t+1).
    cells = (u[:-1:2] * 10).long() * 10 + (u[1::2] * 10).long()
    pairs = torch.bincount(cells, minlength=100).numpy()
    assert scipy.stats.chisquare(pairs).pvalue > LEVEL


def test_uniform_float32_stays_inside_the_open_interval():
    lcg = LinearCongruential(seed=0, a=5, c=1, m=2**32)
    lcg.state = 2**32 - 2  # next value 2**32 - 9 maps to 1 - 2**-32.2, which rounds to 1.0
    u = lcg.uniform(3, dtype=torch.float32)
    assert u.dtype == torch.float32 and float(u.max()) < 1.0 and float(u.min()) > 0.0


def test_lcg_input_checks():
    with pytest.raises(ValueError, match="m must"):
        LinearCongruential(m=2**33)
    with pytest.raises(ValueError, match="a must"):
        LinearCongruential(a=0)
    with pytest.raises(TypeError, match="seed"):
        LinearCongruential(seed=1.0)
    with pytest.raises(ValueError, match="shape"):
        LinearCongruential().integers((2, -1))


# --- Box-Muller -------------------------------------------------------------------------------


def test_box_muller_exact_values():
    u1 = torch.tensor([math.exp(-0.5), math.exp(-0.5), math.exp(-2.0), 1.0], dtype=torch.float64)
    u2 = torch.tensor([0.0, 0.25, 0.5, 0.3], dtype=torch.float64)
    z1, z2 = box_muller(u1, u2)
    torch.testing.assert_close(z1, torch.tensor([1.0, 0.0, -2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(z2, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))


def test_box_muller_moments_and_ks_against_the_normal():
    n = 20_000
    u = LinearCongruential(seed=99).uniform((2, n))
    z1, z2 = box_muller(u[0], u[1])
    for z in (z1, z2):
        # Standard errors of the mean (1/sqrt n), variance (sqrt(2/n)), kurtosis (sqrt(24/n)).
        assert abs(float(z.mean())) < 5 / math.sqrt(n)
        assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
        assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / n)
        assert scipy.stats.kstest(z.numpy(), "norm").pvalue > LEVEL
    # Independence of the pair: correlation within 5 standard errors of 0.
    assert abs(float((z1 * z2).mean())) < 5 / math.sqrt(n)
    normals = LinearCongruential(seed=5).normal((101,))
    assert normals.shape == (101,)


def test_box_muller_input_checks():
    with pytest.raises(ValueError, match="u1"):
        box_muller(torch.tensor([0.0, 0.5]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="same shape"):
        box_muller(torch.tensor([0.5]), torch.tensor([0.5, 0.5]))


# --- finite Markov chains ---------------------------------------------------------------------


def _target_and_proposal(S: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(S, generator=g, dtype=torch.float64) + 0.1
    Q = torch.rand(S, S, generator=g, dtype=torch.float64)
    return target, Q / Q.sum(-1, keepdim=True)


def test_stationary_distribution_of_known_chains():
    a, b = 0.3, 0.1
    two_state = torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64)
    torch.testing.assert_close(
        stationary_distribution(two_state),
        torch.tensor([b, a], dtype=torch.float64) / (a + b),
        rtol=0,
        atol=1e-14,
    )
    # Random walk on a graph (a path with a loop at one end): pi proportional to degree.
    adjacency = torch.tensor(
        [[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.float64
    )
    degree = adjacency.sum(-1)
    P = adjacency / degree.unsqueeze(-1)
    torch.testing.assert_close(
        stationary_distribution(P), degree / degree.sum(), rtol=0, atol=1e-14
    )
    # A doubly stochastic (periodic) chain has the uniform distribution.
    cycle = torch.roll(torch.eye(5, dtype=torch.float64), 1, dims=1)
    torch.testing.assert_close(
        stationary_distribution(cycle), torch.full((5,), 0.2, dtype=torch.float64)
    )


def test_stationary_distribution_refuses_reducible_and_bad_matrices():
    with pytest.raises(ValueError, match="stationary distributions"):
        stationary_distribution(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sum to 1"):
        stationary_distribution(torch.full((2, 2), 0.6))
    with pytest.raises(ValueError, match="square"):
        stationary_distribution(torch.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="non-negative"):
        stationary_distribution(torch.tensor([[1.5, -0.5], [0.5, 0.5]]))


def test_metropolis_hastings_matrix_is_reversible_with_the_target():
    target, Q = _target_and_proposal()
    P = metropolis_hastings_matrix(target, Q)
    pi = target / target.sum()
    assert P.dtype == torch.float64
    torch.testing.assert_close(P.sum(-1), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-15)
    assert float(P.min()) >= 0
    assert detailed_balance_violation(P, pi) < 1e-12
    torch.testing.assert_close(stationary_distribution(P), pi, rtol=0, atol=1e-12)
    # A proposal with zeros (a nearest-neighbour walk) also works.
    walk = (torch.eye(6, dtype=torch.float64).roll(1, 1) + torch.eye(6).roll(-1, 1)) / 2
    P_walk = metropolis_hastings_matrix(target, walk)
    assert detailed_balance_violation(P_walk, pi) < 1e-12
    torch.testing.assert_close(stationary_distribution(P_walk), pi, rtol=0, atol=1e-12)


def test_gibbs_matrices_random_scan_reversible_systematic_stationary():
    g = torch.Generator().manual_seed(1)
    joint = torch.rand(2, 3, 2, generator=g, dtype=torch.float64)
    pi = (joint / joint.sum()).reshape(-1)
    random_scan = gibbs_matrix(joint, scan="random")
    systematic = gibbs_matrix(joint, scan="systematic")
    assert detailed_balance_violation(random_scan, pi) < 1e-12
    torch.testing.assert_close(stationary_distribution(random_scan), pi, rtol=0, atol=1e-12)
    torch.testing.assert_close(pi @ systematic, pi, rtol=0, atol=1e-15)
    torch.testing.assert_close(stationary_distribution(systematic), pi, rtol=0, atol=1e-12)
    assert detailed_balance_violation(systematic, pi) > 1e-3  # a sweep is not reversible


def _transition_counts_fit(chain, level: float = LEVEL) -> None:
    """Chi-square of the observed transitions out of each state against the exact row of P.

    Given the current state, the next one is a draw from that row (the Markov property), so
    the counts out of each state are multinomial: one chi-square statistic summed over rows,
    with cells of expected count < 5 pooled. Impossible transitions must never occur.
    """
    P, states = chain.transition_matrix, chain.states
    S = P.shape[0]
    pairs = states[:, :-1] * S + states[:, 1:]
    counts = torch.bincount(pairs.reshape(-1), minlength=S * S).reshape(S, S).double()
    assert float(counts[P == 0].sum()) == 0
    statistic, dof = 0.0, 0
    for i in range(S):
        observed, expected = counts[i], counts[i].sum() * P[i]
        small = expected < 5
        observed = torch.cat([observed[~small], observed[small].sum().reshape(1)])
        expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
        observed, expected = observed[expected > 0], expected[expected > 0]
        statistic += float(((observed - expected) ** 2 / expected).sum())
        dof += expected.numel() - 1
    assert dof > 0
    assert scipy.stats.chi2.sf(statistic, dof) > level


def test_metropolis_hastings_chain_follows_its_matrix_with_either_generator():
    target, Q = _target_and_proposal()
    for generator in (LinearCongruential(seed=3), torch.Generator().manual_seed(3)):
        chain = metropolis_hastings_chain(target, Q, 200, num_chains=100, generator=generator)
        assert chain.states.shape == (100, 201) and bool((chain.states[:, 0] == 0).all())
        _transition_counts_fit(chain)


def test_gibbs_chains_follow_their_matrices():
    g = torch.Generator().manual_seed(1)
    joint = torch.rand(2, 3, 2, generator=g, dtype=torch.float64)
    for scan in ("random", "systematic"):
        chain = gibbs_chain(
            joint, 200, scan=scan, num_chains=100, generator=LinearCongruential(seed=11)
        )
        _transition_counts_fit(chain)


def test_chains_are_reproducible_and_validate_input():
    target, Q = _target_and_proposal()
    first = metropolis_hastings_chain(target, Q, 20, num_chains=3, generator=LinearCongruential(1))
    again = metropolis_hastings_chain(target, Q, 20, num_chains=3, generator=LinearCongruential(1))
    assert torch.equal(first.states, again.states)
    start = torch.tensor([0, 3, 5])
    chain = metropolis_hastings_chain(target, Q, 5, num_chains=3, initial_state=start)
    assert torch.equal(chain.states[:, 0], start)
    with pytest.raises(ValueError, match="initial_state"):
        metropolis_hastings_chain(target, Q, 5, initial_state=6)
    with pytest.raises(ValueError, match="proposal_matrix"):
        metropolis_hastings_chain(target, Q[:5, :5], 5)
    with pytest.raises(ValueError, match="scan"):
        gibbs_chain(torch.ones(2, 2), 5, scan="blocked")
    with pytest.raises(TypeError, match="generator"):
        gibbs_chain(torch.ones(2, 2), 5, generator=3)
    with pytest.raises(ValueError, match="pi must have length"):
        detailed_balance_violation(torch.eye(2), torch.ones(3) / 3)
