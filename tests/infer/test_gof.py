"""Statistical tests of pyrogen's kernels: samples against exact answers.

Discrete targets: the final states of many independent short chains (vectorised) are
compared with the exact enumeration by Pearson's chi-square test. First the exact worst-case
total variation after that many steps is computed from the kernel's transition matrix, so
the test is not blurred by incomplete mixing. Each test fails with probability
``ALPHA = 1e-4`` when the kernel is correct, so the ~15 statistical tests of pyrogen.infer
together fail spuriously about once in 700 runs (well below 1 / number of tests).

Continuous targets: means (and variances) of independent chains' final states within 4
standard errors of the exact values (two-sided 4 sigma: 6e-5 per comparison).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer import BlockGibbs, DiscreteGibbs, MetropolisHastings
from pyrogen.rbm import binary_states
from tests.common import (
    COMPOSITION_Y,
    DT,
    all_states,
    block_gibbs_matrix,
    categorical_log_prob,
    categorical_model,
    chi_square_pvalue,
    composition_log_odds,
    composition_log_prob,
    composition_model,
    flip_mh_matrix,
    ising_log_prob,
    ising_model,
    make_rbm,
    normalise,
    single_site_gibbs_matrices,
    state_index,
    worst_total_variation,
)

ALPHA = 1e-4
MAX_MIXING_TV = 1e-3  # far below what the chi-square tests can detect with these sizes


def run_chains(kernel, num_chains: int, steps: int, seed: int, warmup: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = kernel.init_chains(num_chains, generator=g)
        for t in range(steps):
            state, info = kernel.step_chains(state, generator=g, warmup=t < warmup)
    return state, info


# ---------------------------------------------------------------------- BlockGibbs
def test_block_gibbs_joint_final_states_match_enumeration():
    rbm = make_rbm(4, 3)
    P = block_gibbs_matrix(rbm)
    pi = normalise(
        -rbm.energy(
            binary_states(4, dtype=DT).repeat_interleave(8, 0),
            binary_states(3, dtype=DT).repeat(16, 1),
        ).detach()
    )
    steps = 12
    assert worst_total_variation(P, pi, steps) < MAX_MIXING_TV
    state, info = run_chains(BlockGibbs(rbm, "joint"), 20000, steps, seed=0)
    assert torch.equal(info["accept_prob"], torch.ones(20000, dtype=DT))
    code = binary_code(state.visible) * 8 + binary_code(state.hidden)  # order of P and pi
    assert chi_square_pvalue(code, pi) > ALPHA


def binary_code(bits: torch.Tensor) -> torch.Tensor:
    """Row of each binary vector in binary_states (least significant bit in column 0)."""
    return (bits.long() << torch.arange(bits.shape[-1])).sum(-1)


def test_block_gibbs_with_evidence_matches_composition_posterior():
    """BlockGibbs takes Gaussian-noise evidence on binary units as per-unit log-odds."""
    rbm = make_rbm(6, 3, seed=1)
    kernel = BlockGibbs(rbm, "marginal", visible_log_odds=composition_log_odds(COMPOSITION_Y))
    pi = normalise(composition_log_prob(rbm, COMPOSITION_Y, binary_states(6, dtype=DT)))
    P = block_gibbs_matrix(rbm, composition_log_odds(COMPOSITION_Y)).reshape(64, 8, 64, 8)
    steps = 15
    assert worst_total_variation(P[:, 0].sum(-1), pi, steps) < MAX_MIXING_TV
    state, _ = run_chains(kernel, 20000, steps, seed=1)
    assert chi_square_pvalue(binary_code(state.visible), pi) > ALPHA


def test_block_gibbs_gaussian_moments_match_enumeration():
    """Gaussian-Bernoulli RBM: E[v] and E[v^2] by enumerating h, v | h ~ N(b + sWh, s^2)."""
    rbm = make_rbm(5, 3, "gaussian")
    mean, second = gaussian_rbm_moments(rbm)
    state, _ = run_chains(BlockGibbs(rbm), 20000, 30, seed=2)
    assert_moments(state.visible, mean, second)


def gaussian_rbm_moments(rbm):
    H = binary_states(rbm.n_hidden, dtype=DT)
    with torch.no_grad():
        wh = H @ rbm.weight.T
        b, c = rbm.visible_bias, rbm.hidden_bias
        log_w = H @ c + wh @ b / rbm.sigma + 0.5 * (wh**2).sum(-1)  # log p(h) + const
        p_h = normalise(log_w)
        means = b + rbm.sigma * wh
        mean = p_h @ means
        second = p_h @ (means**2 + rbm.sigma**2)
    return mean, second


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, second: torch.Tensor) -> None:
    """Sample mean and second moment of independent draws within 4 standard errors."""
    n = samples.shape[0]
    se_mean = samples.std(0) / n**0.5
    se_second = (samples**2).std(0) / n**0.5
    assert bool(((samples.mean(0) - mean).abs() < 4 * se_mean).all()), (samples.mean(0), mean)
    assert bool(((samples.pow(2).mean(0) - second).abs() < 4 * se_second).all())


# ------------------------------------------------------------------- DiscreteGibbs
def _discrete(name):
    if name == "composition":
        rbm = make_rbm(6, 3, seed=1)
        log_prob = lambda s: composition_log_prob(rbm, COMPOSITION_Y, s)  # noqa: E731
        return composition_model(rbm), (COMPOSITION_Y,), log_prob
    if name == "ising":
        return ising_model, (), ising_log_prob
    return categorical_model, (), categorical_log_prob


@pytest.mark.parametrize(
    "name,scan", [("ising", "random"), ("categorical", "systematic"), ("composition", "random")]
)
def test_discrete_gibbs_final_states_match_enumeration(name, scan):
    model, args, log_prob = _discrete(name)
    kernel = DiscreteGibbs(model, scan, model_args=args)
    cards = kernel.target.cardinalities
    pi = normalise(log_prob(all_states(cards)))
    matrices = single_site_gibbs_matrices(kernel.log_joint_fn, cards)
    if scan == "random":
        sweep = torch.linalg.matrix_power(torch.stack(matrices).mean(0), len(cards))
    else:
        sweep = torch.linalg.multi_dot(matrices)
    steps = 40 if name == "ising" else 10  # the Ising chain mixes slowest (TV 0.06 at 10)
    assert worst_total_variation(sweep, pi, steps) < MAX_MIXING_TV
    state, _ = run_chains(kernel, 8000, steps, seed=3)
    assert chi_square_pvalue(state_index(state.discrete, cards), pi) > ALPHA


# -------------------------------------------------------------- MetropolisHastings
@pytest.mark.parametrize("name,steps", [("categorical", 100), ("composition", 150)])
def test_metropolis_discrete_final_states_match_enumeration(name, steps):
    model, args, log_prob = _discrete(name)
    kernel = MetropolisHastings(model, model_args=args)
    cards = kernel.target.cardinalities
    states = all_states(cards)
    pi = normalise(log_prob(states))
    with torch.no_grad():
        log_density = kernel.log_density_fn(states, torch.zeros(len(states), 0, dtype=DT))
    assert worst_total_variation(flip_mh_matrix(log_density, cards), pi, steps) < MAX_MIXING_TV
    state, _ = run_chains(kernel, 8000, steps, seed=4)
    assert chi_square_pvalue(state_index(state.discrete, cards), pi) > ALPHA


def normal_normal_model(y):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DT), 2.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


NN_Y = torch.tensor([0.3, 1.2, 0.8, 2.0, -0.4], dtype=DT)


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_metropolis_normal_normal_posterior(proposal):
    """Conjugate posterior: precision 1/4 + n, mean sum(y) / precision."""
    kernel = MetropolisHastings(normal_normal_model, proposal, model_args=(NN_Y,))
    precision = 1 / 4 + len(NN_Y)
    mean = NN_Y.sum() / precision
    state, info = run_chains(kernel, 4000, 150, seed=5, warmup=100)
    mu = kernel.chain_values(state)["mu"].unsqueeze(-1)
    assert_moments(mu, mean.reshape(1), (mean**2 + 1 / precision).reshape(1))
    target = 0.574 if proposal == "mala" else 0.234
    assert abs(float(info["accept_prob"].mean()) - target) < 0.1  # adaptation did its job


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_metropolis_gaussian_rbm_moments(proposal):
    rbm = make_rbm(5, 3, "gaussian")
    mean, second = gaussian_rbm_moments(rbm)
    kernel = MetropolisHastings(rbm.model, proposal)
    state, _ = run_chains(kernel, 4000, 400, seed=6, warmup=150)
    assert_moments(kernel.chain_values(state)["v"], mean, second)


def test_metropolis_user_proposal_with_hastings_correction():
    """An asymmetric independence proposal N(1, 1.5^2) for the Normal-Normal posterior."""
    proposal_dist = dist.Normal(torch.tensor(1.0, dtype=DT), 1.5)

    def proposal(values, generator):
        mu = values["mu"]
        new = 1.0 + 1.5 * torch.randn(mu.shape, generator=generator, dtype=DT)
        return {"mu": new}, proposal_dist.log_prob(new), proposal_dist.log_prob(mu)

    kernel = MetropolisHastings(normal_normal_model, proposal, model_args=(NN_Y,))
    precision = 1 / 4 + len(NN_Y)
    mean = NN_Y.sum() / precision
    state, _ = run_chains(kernel, 4000, 60, seed=7)
    mu = kernel.chain_values(state)["mu"].unsqueeze(-1)
    assert_moments(mu, mean.reshape(1), (mean**2 + 1 / precision).reshape(1))
