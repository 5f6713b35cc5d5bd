"""Exact tests of pyrogen's kernels: full transition matrices on tiny targets (float64).

Each kernel's transition matrix is built from its own conditional / acceptance probabilities
(the functions its step uses) and checked against a target written out by hand: stationarity
pi P = pi for every kernel, detailed balance pi_i P_ij = pi_j P_ji for the reversible ones.
"""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import NUTS
from pyro.infer.mcmc.util import initialize_model

from pyrogen.infer import DiscreteGibbs, GibbsWithinHMC, MetropolisHastings
from pyrogen.infer.adaptation import dual_averaging_init, dual_averaging_update, step_size
from pyrogen.infer.discrete_gibbs import coordinate_log_conditional
from pyrogen.infer.metropolis import value_and_grad
from pyrogen.rbm import binary_states
from tests.common import (
    COMPOSITION_Y,
    DT,
    all_states,
    block_gibbs_matrix,
    categorical_log_prob,
    categorical_model,
    composition_log_prob,
    composition_model,
    flip_mh_matrix,
    ising_log_prob,
    ising_model,
    make_rbm,
    normalise,
    single_site_gibbs_matrices,
)

TOL = 1e-10
ALPHA_KS = 1e-4  # failure rate of a correct kernel in the goodness-of-fit tests here


def assert_stationary(pi: torch.Tensor, P: torch.Tensor) -> None:
    assert torch.allclose(P.sum(-1), torch.ones_like(pi), atol=TOL, rtol=0)
    assert float((pi @ P - pi).abs().max()) < TOL


def assert_detailed_balance(pi: torch.Tensor, P: torch.Tensor) -> None:
    flow = pi.unsqueeze(-1) * P
    assert float((flow - flow.T).abs().max()) < TOL


# --------------------------------------------------------------------- BlockGibbs
EVIDENCE = {
    "none": None,
    "finite": torch.tensor([0.7, -1.2, 0.0, 2.0], dtype=DT),
    "clamped": torch.tensor([math.inf, -1.2, -math.inf, 0.5], dtype=DT),
}


@pytest.mark.parametrize("evidence", list(EVIDENCE))
def test_block_gibbs_joint_is_stationary(evidence):
    rbm = make_rbm(4, 3)
    a = EVIDENCE[evidence]
    P = block_gibbs_matrix(rbm, a)
    V = binary_states(4, dtype=DT).repeat_interleave(8, 0)
    H = binary_states(3, dtype=DT).repeat(16, 1)
    log_pi = -rbm.energy(V, H).detach()
    if a is not None:  # e^{a.v} for finite a; a = +inf / -inf clamps v_i to 1 / 0
        finite = torch.where(a.isinf(), torch.zeros_like(a), a)
        log_pi = log_pi + V @ finite
        clamp_one, clamp_zero = a == math.inf, a == -math.inf
        outside = ((V == 0) & clamp_one).any(-1) | ((V == 1) & clamp_zero).any(-1)
        log_pi = log_pi.masked_fill(outside, -math.inf)
    assert_stationary(normalise(log_pi), P)


def test_block_gibbs_marginal_is_reversible():
    rbm = make_rbm(4, 3)
    P = block_gibbs_matrix(rbm).reshape(16, 8, 16, 8)
    # The sweep redraws h first, so the old h does not matter ...
    assert torch.allclose(P, P[:, :1].expand_as(P), atol=TOL, rtol=0)
    # ... and the chain on v alone is reversible with respect to P(v) ∝ exp(-F(v)).
    K = P[:, 0].sum(-1)
    pi = normalise(-rbm.free_energy(binary_states(4, dtype=DT)).detach())
    assert_stationary(pi, K)
    assert_detailed_balance(pi, K)


# ------------------------------------------------------------------- DiscreteGibbs
TARGETS = {
    "ising": (ising_model, ising_log_prob),
    "categorical": (categorical_model, categorical_log_prob),
}


def _discrete_target(name):
    if name == "composition":
        rbm = make_rbm(6, 3, seed=1)
        model = composition_model(rbm)
        return model, (COMPOSITION_Y,), lambda s: composition_log_prob(rbm, COMPOSITION_Y, s)
    model, log_prob = TARGETS[name]
    return model, (), log_prob


def test_categorical_layout():
    """The flat layout the hand-written targets assume: (a, c, b_0, b_1)."""
    target = DiscreteGibbs(categorical_model).target
    assert [s.name for s in target.discrete_sites] == ["a", "c", "b"]
    assert target.cardinalities.tolist() == [3, 2, 3, 3]
    values = target.discrete_values(torch.tensor([[2, 1, 0, 2]]))
    assert values["a"].tolist() == [2] and values["c"].tolist() == [1.0]
    assert values["b"].tolist() == [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]


@pytest.mark.parametrize("name", ["ising", "categorical", "composition"])
def test_discrete_gibbs_conditionals_are_exact(name):
    model, args, log_prob = _discrete_target(name)
    kernel = DiscreteGibbs(model, model_args=args)
    cards = kernel.target.cardinalities
    states = all_states(cards)
    for d in range(len(cards)):
        coordinate = torch.full((len(states),), d, dtype=torch.long)
        cond = coordinate_log_conditional(states, coordinate, kernel.log_joint_fn, cards)
        # By hand: P(x_d = j | rest) from the unnormalised target at every j.
        k = int(cards[d])
        expected = torch.stack(
            [log_prob(states.index_fill(1, torch.tensor([d]), j)) for j in range(k)], -1
        ).log_softmax(-1)
        assert torch.allclose(cond[:, :k], expected, atol=TOL, rtol=0)
        assert bool((cond[:, k:] == -math.inf).all())


@pytest.mark.parametrize("name", ["ising", "categorical", "composition"])
def test_discrete_gibbs_random_scan_is_reversible(name):
    model, args, log_prob = _discrete_target(name)
    kernel = DiscreteGibbs(model, "random", model_args=args)
    cards = kernel.target.cardinalities
    pi = normalise(log_prob(all_states(cards)))
    P_single = torch.stack(single_site_gibbs_matrices(kernel.log_joint_fn, cards)).mean(0)
    assert_detailed_balance(pi, P_single)
    sweep = torch.linalg.matrix_power(P_single, len(cards))  # one step = D updates
    assert_stationary(pi, sweep)
    assert_detailed_balance(pi, sweep)


@pytest.mark.parametrize("name", ["ising", "categorical"])
def test_discrete_gibbs_systematic_scan_is_stationary(name):
    model, args, log_prob = _discrete_target(name)
    kernel = DiscreteGibbs(model, "systematic", model_args=args)
    cards = kernel.target.cardinalities
    pi = normalise(log_prob(all_states(cards)))
    sweep = torch.eye(len(pi), dtype=DT)
    for P_d in single_site_gibbs_matrices(kernel.log_joint_fn, cards):
        sweep = sweep @ P_d
    assert_stationary(pi, sweep)


def test_discrete_gibbs_unvectorized_model_falls_back_exactly():
    """A model that sums over every dimension cannot batch; the per-element fallback must
    give the same conditionals (and say that it is slow)."""

    def flat_model():
        x = pyro.sample("x", dist.Bernoulli(torch.full((6,), 0.5, dtype=DT)).to_event(1))
        s = 2 * x - 1
        pair = s[..., [0, 1, 2, 3, 4, 5, 0]] * s[..., [1, 2, 3, 4, 5, 0, 3]]
        couplings = torch.tensor([0.8, -0.6, 0.9, 0.5, -0.7, 0.4, 0.6], dtype=DT)
        fields = torch.tensor([0.3, -0.2, 0.1, 0.0, -0.4, 0.25], dtype=DT)
        pyro.factor("ising", (couplings * pair).sum() + (fields * s).sum())  # not vectorised

    with pytest.warns(UserWarning, match="does not broadcast"):
        kernel = DiscreteGibbs(flat_model)
        target = kernel.target
    assert not target.vectorized
    states = all_states(target.cardinalities)[::4]  # 16 of the 64 states keep this quick
    for d in (0, 3):
        coordinate = torch.full((len(states),), d, dtype=torch.long)
        cond = coordinate_log_conditional(
            states, coordinate, kernel.log_joint_fn, target.cardinalities
        )
        expected = torch.stack(
            [ising_log_prob(states.index_fill(1, torch.tensor([d]), j)) for j in range(2)], -1
        ).log_softmax(-1)
        assert torch.allclose(cond, expected, atol=TOL, rtol=0)


# -------------------------------------------------------------- MetropolisHastings
@pytest.mark.parametrize("name", ["ising", "categorical", "composition"])
def test_metropolis_discrete_is_reversible(name):
    model, args, log_prob = _discrete_target(name)
    kernel = MetropolisHastings(model, model_args=args)
    cards = kernel.target.cardinalities
    states = all_states(cards)
    with torch.no_grad():
        log_density = kernel.log_density_fn(states, torch.zeros(len(states), 0, dtype=DT))
    # The kernel's target is the hand-written one up to a constant ...
    diff = log_density - log_prob(states)
    assert float((diff - diff[0]).abs().max()) < TOL
    # ... and the flip chain is reversible with respect to it.
    pi = normalise(log_prob(states))
    P = flip_mh_matrix(log_density, cards)
    assert_stationary(pi, P)
    assert_detailed_balance(pi, P)


def _constrained_model(y):
    loc = pyro.sample("loc", dist.Normal(torch.tensor(0.0, dtype=DT), 2.0))
    scale = pyro.sample("scale", dist.LogNormal(torch.tensor(0.0, dtype=DT), 0.5))
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3, dtype=DT)))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(loc + weights[..., 0], scale), obs=y)


CONSTRAINED_Y = torch.tensor([0.3, -0.4, 1.1, 0.8], dtype=DT)


def test_log_density_matches_pyro_potential():
    """Jacobians and transforms: the kernel's log density is minus Pyro's potential energy."""
    kernel = MetropolisHastings(_constrained_model, model_args=(CONSTRAINED_Y,))
    target = kernel.target
    _, potential_fn, transforms, _ = initialize_model(_constrained_model, (CONSTRAINED_Y,))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, target.num_continuous, generator=g, dtype=DT)
    log_density = kernel.log_density_fn(torch.zeros(5, 0, dtype=torch.long), z)
    for i in range(5):
        params = {
            s.name: z[i, s.offset : s.offset + s.numel].reshape(s.unconstrained_shape)
            for s in target.continuous_sites
        }
        assert abs(float(log_density[i] + potential_fn(params))) < TOL
    assert set(transforms) == set(kernel.transforms) == {"loc", "scale", "weights"}


MIXTURE_WEIGHTS = torch.tensor([0.3, 0.7], dtype=DT)
MIXTURE_LOCS = torch.tensor([-2.0, 1.0], dtype=DT)
MIXTURE_SCALES = torch.tensor([0.5, 1.0], dtype=DT)


def _mixture_model():
    """A skewed 1-D target: MALA's drift differs a lot between a point and its proposal."""
    mixture = dist.MixtureSameFamily(
        dist.Categorical(MIXTURE_WEIGHTS), dist.Normal(MIXTURE_LOCS, MIXTURE_SCALES)
    )
    base = dist.Normal(torch.tensor(0.0, dtype=DT), 1.0)  # a real support; the factor swaps it
    x = pyro.sample("x", base)
    pyro.factor("mixture", mixture.log_prob(x) - base.log_prob(x))


def _mixture_cdf(x: torch.Tensor) -> torch.Tensor:
    return (MIXTURE_WEIGHTS * dist.Normal(MIXTURE_LOCS, MIXTURE_SCALES).cdf(x.unsqueeze(-1))).sum(
        -1
    )


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_one_kernel_step_leaves_the_target_invariant(proposal):
    r"""T1: the full MH kernel, as it samples (its proposal draw, the proposal density in its
    Hastings ratio, its accept step), leaves the target invariant: 200,000 chains started at
    exact draws from a two-component mixture, one step of size 1.5 each (accepting about
    half), are still exact draws. Kolmogorov-Smirnov test of the chains' new values against
    the mixture's CDF; the chains are independent, so a correct kernel fails with probability
    ALPHA = 1e-4. A Hastings ratio whose q does not match the proposal actually drawn (MALA's
    backward drift dropped, forward and backward swapped, a random-walk q for MALA) shifts
    mass between the components and is rejected with p < 1e-20.
    """
    from scipy import stats

    n = 200_000
    g = torch.Generator().manual_seed(7)
    component = torch.multinomial(MIXTURE_WEIGHTS, n, replacement=True, generator=g)
    x0 = MIXTURE_LOCS[component] + MIXTURE_SCALES[component] * torch.randn(n, generator=g, dtype=DT)
    kernel = MetropolisHastings(_mixture_model, proposal, step_size=1.5, adapt_step_size=False)
    state = kernel.init_chains(n, generator=g, initial_params={"x": x0})
    state, info = kernel.step_chains(state, generator=g)
    accepted = float(info["accepted"].to(DT).mean())
    assert 0.2 < accepted < 0.9, accepted  # the test is about the accept step: exercise it
    x1 = kernel.chain_values(state)["x"].reshape(-1)
    assert not torch.equal(x1, x0)
    result = stats.kstest(x1.numpy(), lambda v: _mixture_cdf(torch.as_tensor(v, dtype=DT)).numpy())
    assert result.pvalue > ALPHA_KS, (proposal, result, accepted)


def test_mala_gradient_is_the_gradient_of_the_log_density():
    """MALA's drift uses the gradient of the log density (central differences)."""
    kernel = MetropolisHastings(_constrained_model, "mala", model_args=(CONSTRAINED_Y,))
    g = torch.Generator().manual_seed(1)
    n, dim = 50, kernel.target.num_continuous
    empty = torch.zeros(n, 0, dtype=torch.long)
    z = torch.randn(n, dim, generator=g, dtype=DT)
    _, grad = value_and_grad(kernel.log_density_fn, empty, z)
    h = 1e-6
    for d in range(dim):
        basis = torch.eye(dim, dtype=DT)[d] * h
        numeric = (
            kernel.log_density_fn(empty, z + basis) - kernel.log_density_fn(empty, z - basis)
        ) / (2 * h)
        assert torch.allclose(grad[:, d], numeric, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------ GibbsWithinHMC
def gmm_model(data):
    loc = pyro.sample("loc", dist.Normal(torch.tensor([-2.0, 2.0], dtype=DT), 1.0).to_event(1))
    weight = pyro.sample("weight", dist.Beta(torch.tensor(2.0, dtype=DT), 2.0))
    with pyro.plate("data", data.shape[-1]):
        z = pyro.sample("z", dist.Bernoulli(weight))
        pyro.sample("obs", dist.Normal(loc[z.long()], 1.0), obs=data)


GMM_DATA = torch.tensor([-2.3, -1.1, 1.7, 2.4, 0.2], dtype=DT)


def test_gibbs_within_hmc_conditionals_are_exact():
    kernel = GibbsWithinHMC(NUTS(gmm_model))
    kernel.setup(0, GMM_DATA)
    target = kernel._target
    loc = torch.tensor([-1.5, 2.2], dtype=DT)
    weight = torch.tensor(0.3, dtype=DT)
    unconstrained = {
        "loc": kernel.transforms["loc"](loc),
        "weight": kernel.transforms["weight"](weight),
    }
    fn = kernel.gibbs_log_joint_fn(unconstrained)
    states = all_states(target.cardinalities)[:7]
    for d in range(len(GMM_DATA)):
        coordinate = torch.full((len(states),), d, dtype=torch.long)
        cond = coordinate_log_conditional(states, coordinate, fn, target.cardinalities)
        # z_d | loc, weight, y_d ∝ w^z (1 - w)^(1 - z) N(y_d; loc_z, 1), whatever the rest.
        log_w = torch.stack([torch.log1p(-weight), torch.log(weight)])
        expected = (log_w + dist.Normal(loc, 1.0).log_prob(GMM_DATA[d])).log_softmax(-1)
        assert torch.allclose(cond, expected.expand_as(cond), atol=TOL, rtol=0)
    kernel.cleanup()


# ----------------------------------------------------------------- step-size adaptation
def test_dual_averaging_finds_the_target_step_size():
    """With accept_prob(eps) = exp(-eps) and target 0.5 the fixed point is eps = log 2."""
    state = dual_averaging_init(torch.tensor([0.01, 1.0, 50.0], dtype=DT))
    for _ in range(3000):
        eps = step_size(state, warmup=True)
        state = dual_averaging_update(state, torch.exp(-eps), 0.5)
    assert torch.allclose(
        step_size(state, warmup=False), torch.full((3,), math.log(2), dtype=DT), rtol=0.02
    )


@pytest.mark.parametrize("name", ["ising", "categorical", "composition"])
def test_discrete_gibbs_permutation_scan_is_reversible(name):
    """Random scan without replacement: the sweep is the average over all D! orders of the
    product of single-site kernels; it must keep the target and satisfy detailed balance, and
    the kernel's scan_order must draw every coordinate exactly once per sweep and chain."""
    from pyrogen.infer.discrete_gibbs import scan_order

    model, args, log_prob = _discrete_target(name)
    kernel = DiscreteGibbs(model, model_args=args)
    assert kernel.scan == "permutation"  # the default
    cards = kernel.target.cardinalities
    pi = normalise(log_prob(all_states(cards)))
    singles = single_site_gibbs_matrices(kernel.log_joint_fn, cards)
    orders = list(itertools.permutations(range(len(cards))))
    sweep = torch.zeros(len(pi), len(pi), dtype=DT)
    for order in orders:
        product = torch.eye(len(pi), dtype=DT)
        for d in order:
            product = product @ singles[d]
        sweep += product / len(orders)
    assert_stationary(pi, sweep)
    assert_detailed_balance(pi, sweep)
    drawn = scan_order(500, len(cards), "permutation", torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(drawn.sort(0).values, torch.arange(len(cards)).unsqueeze(-1).expand(-1, 500))
    first = torch.bincount(drawn[0], minlength=len(cards)).double() / 500
    assert float((first - 1 / len(cards)).abs().max()) < 0.1  # every coordinate can go first
