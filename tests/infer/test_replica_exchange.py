"""Replica exchange (pyrogen.infer.replica_exchange): exact transition matrices on the joint
state space of all replicas, goodness of fit against enumeration where plain Gibbs fails,
and the wiring (single replica = inner kernel, pyro.infer.MCMC, ladder, sample_stats).

Everything is float64 and seeded. Goodness-of-fit tests reject at ``ALPHA = 1e-3``: with a
handful of such tests a correct sampler fails one of them with probability below 1%.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from pyrogen.infer import (
    BlockGibbs,
    DiscreteGibbs,
    GibbsWithGradients,
    MetropolisHastings,
    ReplicaExchange,
    sample,
)
from pyrogen.infer.block_gibbs import (
    BlockGibbsState,
    conditionals,
    joint_log_density,
    log_transition_prob,
)
from pyrogen.infer.metropolis import value_and_grad
from pyrogen.infer.pyro_target import ChainLogJoint
from pyrogen.infer.replica_exchange import (
    equalised_ladder,
    swap_index,
    swap_log_accept_ratio,
    update_round_trips,
)
from pyrogen.rbm import binary_states
from tests.common import (
    all_states,
    chi_square_pvalue,
    make_rbm,
    normalise,
    single_site_gibbs_matrices,
    state_index,
)

DT = torch.float64
TOL = 1e-10
ALPHA = 1e-3


# --------------------------------------------------------------- a bimodal bit model
def curie_weiss(num_bits, coupling, field, prior_probs=None):
    """Bits x with prior Bernoulli(prior_probs) and the factor
    ``coupling / D * s^2 + field * s``, ``s = sum(2 x - 1)``: two far modes (all ones and
    all zeros) whose masses differ by ``exp(2 D field)``."""
    probs = torch.full((num_bits,), 0.5, dtype=DT) if prior_probs is None else prior_probs

    def model():
        x = pyro.sample("x", dist.Bernoulli(probs).to_event(1))
        s = (2 * x - 1).sum(-1)
        pyro.factor("cw", coupling / num_bits * s**2 + field * s)

    def log_prior(states):
        x = states.to(DT)
        return (x * probs.log() + (1 - x) * (1 - probs).log()).sum(-1)

    def log_likelihood(states):
        s = (2 * states.to(DT) - 1).sum(-1)
        return coupling / num_bits * s**2 + field * s

    return model, log_prior, log_likelihood


def ones_distribution(num_bits, coupling, field):
    """Exact law of the number of ones of :func:`curie_weiss` with a uniform prior."""
    k = torch.arange(num_bits + 1, dtype=DT)
    s = 2 * k - num_bits
    log_binom = torch.lgamma(torch.tensor(num_bits + 1.0, dtype=DT)) - (
        torch.lgamma(k + 1) + torch.lgamma(num_bits - k + 1)
    )
    return normalise(log_binom + coupling / num_bits * s**2 + field * s)


# ------------------------------------------------------- (a) exact transition matrices
def swap_matrix(log_lik, betas, pairs):
    """Exchange phase on the joint space of 3 replicas (index x0 * n^2 + x1 * n + x2) for
    the proposed ``pairs``, from the library's swap acceptance ratio."""
    n = log_lik.shape[0]
    joint = torch.cartesian_prod(*[torch.arange(n)] * 3)  # (n^3, 3) state index per slot
    ratio = swap_log_accept_ratio(betas, log_lik[joint].T)  # (2, n^3)
    alpha = ratio.clamp(max=0).exp()
    P = torch.zeros(n**3, n**3, dtype=DT)
    rows = torch.arange(n**3)
    for r in pairs:
        swapped = joint.clone()
        swapped[:, [r, r + 1]] = joint[:, [r + 1, r]]
        cols = (swapped * torch.tensor([n * n, n, 1])).sum(-1)
        P[rows, cols] += alpha[r]
    P[rows, rows] += 1 - P.sum(-1)
    return P


@pytest.mark.parametrize("swap", ["deo", "stochastic"])
def test_one_step_leaves_the_product_of_tempered_targets_invariant(swap):
    prior = torch.tensor([0.3, 0.6, 0.45], dtype=DT)
    model, log_prior, log_likelihood = curie_weiss(3, 1.3, 0.2, prior)
    betas = torch.tensor([1.0, 0.5, 0.2], dtype=DT)
    kernel = DiscreteGibbs(model, scan="systematic", blocks="none")
    target = kernel.target
    states = all_states(target.cardinalities)
    # The tempering protocol: prior kept, likelihood (here a factor) times beta.
    for beta in betas:
        by_hand = log_prior(states) + beta * log_likelihood(states)
        lib = target.log_joint(target.discrete_values(states), 1, beta=beta)
        assert torch.allclose(lib, by_hand, atol=TOL, rtol=0)
    # Inner step: the kernel's own tempered conditionals (the per-chain beta path).
    inner = []
    for beta in betas:
        fn = ChainLogJoint(target, beta.expand(states.shape[0]))
        Ps = single_site_gibbs_matrices(fn, target.cardinalities)
        inner.append(Ps[0] @ Ps[1] @ Ps[2])
    K = torch.kron(torch.kron(inner[0], inner[1]), inner[2])
    log_lik = log_likelihood(states)
    even, odd = swap_matrix(log_lik, betas, [0]), swap_matrix(log_lik, betas, [1])
    pis = [normalise(log_prior(states) + b * log_lik) for b in betas]
    pi = torch.kron(torch.kron(pis[0], pis[1]), pis[2])
    if swap == "deo":  # the even step then the odd one
        steps = [K @ even, K @ odd, K @ even @ K @ odd]
    else:
        steps = [K @ (0.5 * even + 0.5 * odd)]
    for P in steps:
        assert torch.allclose(P.sum(-1), torch.ones_like(pi), atol=TOL, rtol=0)
        print(f"invariance error {float((pi @ P - pi).abs().max()):.2e}")
        assert float((pi @ P - pi).abs().max()) < TOL

    # The real step_chains from one joint state, on 30000 chains at once, draws the next
    # joint state from that row of the matrix (DEO's first step proposes the even pair).
    if swap == "deo":
        re = ReplicaExchange(
            DiscreteGibbs(model, scan="systematic", blocks="none"), betas, adapt_ladder=False
        )
        g = torch.Generator().manual_seed(1)
        start = torch.tensor([0, 1, 0])
        state = re.init_chains(30000, generator=g, initial_params={"x": start.to(DT)})
        state, _ = re.step_chains(state, generator=g)
        slots = state.inner.discrete.reshape(3, 30000, 3)
        n = states.shape[0]
        index = state_index(slots, target.cardinalities)  # (3, C)
        joint = index[0] * n * n + index[1] * n + index[2]
        row = int(state_index(start, target.cardinalities)) * (n * n + n + 1)
        assert chi_square_pvalue(joint, (K @ even)[row]) > ALPHA


@pytest.mark.parametrize("with_base", [False, True], ids=["whole", "base"])
def test_block_gibbs_replica_exchange_is_invariant(with_base):
    rbm = make_rbm(3, 2)
    a = torch.tensor([0.4, -0.8, 0.0], dtype=DT)  # evidence, tempered with the RBM
    base = torch.tensor([1.5, -2.0, 0.7], dtype=DT) if with_base else None
    betas = torch.tensor([1.0, 0.4], dtype=DT)
    V = binary_states(3, dtype=DT).repeat_interleave(4, 0)
    H = binary_states(2, dtype=DT).repeat(8, 1)
    log_density = (-rbm.energy(V, H) + V @ a).detach()  # the Boltzmann density and evidence
    c = conditionals(rbm, a)
    assert torch.allclose(joint_log_density(c, BlockGibbsState(V, H)), log_density, atol=TOL)
    # Tempered: log p_base(v) + beta * (log density - log p_base(v)); no base: p_base = 1.
    log_base = V @ base if with_base else torch.zeros_like(log_density)
    log_lik = log_density - log_base
    inner = BlockGibbs(rbm, "joint", visible_log_odds=a, base_bias=base)
    state = BlockGibbsState(V, H)
    assert torch.allclose(inner.tempered_log_likelihood(state), log_lik, atol=TOL, rtol=0)
    n = V.shape[0]
    old = BlockGibbsState(V.repeat_interleave(n, 0), H.repeat_interleave(n, 0))
    new = BlockGibbsState(V.repeat(n, 1), H.repeat(n, 1))
    Ks = [
        log_transition_prob(rbm, old, new, a, beta=b, base_bias=base).exp().reshape(n, n)
        for b in betas
    ]
    pis = [normalise(log_base + b * log_lik) for b in betas]
    for K, p in zip(Ks, pis, strict=True):  # tempered block Gibbs alone
        assert float((p @ K - p).abs().max()) < TOL
    joint = torch.cartesian_prod(torch.arange(n), torch.arange(n))
    alpha = swap_log_accept_ratio(betas, log_lik[joint].T)[0].clamp(max=0).exp()
    S = torch.diag(1 - alpha)
    S[torch.arange(n * n), joint[:, 1] * n + joint[:, 0]] += alpha
    P = torch.kron(Ks[0], Ks[1]) @ S
    pi = torch.kron(pis[0], pis[1])
    assert torch.allclose(P.sum(-1), torch.ones_like(pi), atol=TOL, rtol=0)
    assert float((pi @ P - pi).abs().max()) < TOL

    # bits order: binary_states has the first unit as the least significant bit.
    bits_v, bits_h = torch.tensor([1.0, 2.0, 4.0], dtype=DT), torch.tensor([1.0, 2.0], dtype=DT)
    # The real tempered sweep draws from the matrix's row (beta = 0.4, one start state).
    g = torch.Generator().manual_seed(2)
    chains = 20000
    inner.beta = torch.full((chains,), 0.4, dtype=DT)
    start = inner.init_chains(chains, generator=g, initial_params={"v": V[5]})
    start = BlockGibbsState(start.visible, H[5].expand(chains, 2).clone())
    moved, _ = inner.step_chains(start, generator=g)
    inner.beta = None
    index = (moved.visible @ bits_v) * 4 + moved.hidden @ bits_h
    assert chi_square_pvalue(index.long(), Ks[1][5]) > ALPHA

    # The real kernel's beta = 1 draws: final states of 4000 independent chains.
    # With the base, two sweeps per swap phase (each leaves the product invariant too).
    kernel = ReplicaExchange(
        BlockGibbs(rbm, "joint", visible_log_odds=a, base_bias=base),
        betas=[1.0, 0.4],
        inner_steps=2 if with_base else 1,
    )
    idata = sample(kernel, 4000, 1, 30, seed=3, progress=False, check=False)
    v = torch.as_tensor(idata.posterior["v"].values[:, -1])
    h = torch.as_tensor(idata.posterior["h"].values[:, -1])
    index = (v @ bits_v) * 4 + h @ bits_h
    assert chi_square_pvalue(index.long(), pis[0]) > ALPHA


# --------------------------------------------- (b) goodness of fit where Gibbs fails
def test_replica_exchange_samples_a_bimodal_target_that_gibbs_cannot():
    """10 bits, modes at all zeros (mass ~0.12) and all ones (~0.88), separated by a
    barrier of ~e^-10 at beta = 1. Every chain starts at all zeros. The final states of 200
    independent chains are tested against the exact law of the number of ones: replica
    exchange passes (p > 1e-3, a false failure rate of 1e-3 for a correct sampler) and plain
    DiscreteGibbs from the same starts, with as many sweeps, fails (p < 1e-3)."""
    num_bits, coupling, field = 10, 1.5, 0.1
    model, _, _ = curie_weiss(num_bits, coupling, field)
    exact = ones_distribution(num_bits, coupling, field)
    start = {"x": torch.zeros(num_bits, dtype=DT)}
    re = ReplicaExchange(DiscreteGibbs(model), betas=5, min_beta=0.05)
    draws = sample(re, 200, 150, 150, seed=0, progress=False, check=False, initial_params=start)
    ones = torch.as_tensor(draws.posterior["x"].values[:, -1]).sum(-1).long()
    p_re = chi_square_pvalue(ones, exact)
    plain = sample(
        DiscreteGibbs(model),
        200,
        150,
        150,
        seed=0,
        progress=False,
        check=False,
        initial_params=start,
    )
    ones_plain = torch.as_tensor(plain.posterior["x"].values[:, -1]).sum(-1).long()
    p_plain = chi_square_pvalue(ones_plain, exact)
    print(f"chi-square p: replica exchange {p_re:.3g}, plain Gibbs {p_plain:.3g}")
    assert p_re > ALPHA
    assert p_plain < ALPHA
    assert float(draws.sample_stats["round_trips"][:, -1].mean()) > 1


# ------------------------------------------------------- (c) one replica = the kernel
def inner_kernel_factory(kind):
    """A function that builds a fresh inner kernel of the given kind."""
    model, _, _ = curie_weiss(5, 1.0, 0.2)

    def continuous():
        x = pyro.sample("z", dist.Normal(torch.zeros((), dtype=DT), 2.0))
        pyro.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(0.7, dtype=DT))

    def make():
        if kind == "gibbs":
            return DiscreteGibbs(model)
        if kind == "mala":
            return MetropolisHastings(continuous, proposal="mala", step_size=0.5)
        return BlockGibbs(make_rbm(4, 3))

    return make


@pytest.mark.parametrize("kind", ["gibbs", "mala", "rbm"])
def test_a_single_replica_is_the_inner_kernel(kind):
    make = inner_kernel_factory(kind)

    ours = sample(ReplicaExchange(make(), [1.0]), 3, 20, 10, seed=5, progress=False, check=False)
    theirs = sample(make(), 3, 20, 10, seed=5, progress=False, check=False)
    for name in theirs.posterior.data_vars:
        assert (ours.posterior[name].values == theirs.posterior[name].values).all()
    for name in theirs.sample_stats.data_vars:
        assert (ours.sample_stats[name].values == theirs.sample_stats[name].values).all()


@pytest.mark.parametrize("kind", ["gibbs", "mala", "rbm"])
def test_inner_steps_are_inner_kernel_steps_between_swaps(kind):
    """A single replica with ``inner_steps=2`` is the inner kernel with every other state
    kept (warm-up adaptation included: 4 of 5 steps adapt, i.e. 8 of 10 inner steps)."""
    make = inner_kernel_factory(kind)

    kernel = ReplicaExchange(make(), [1.0], inner_steps=2)
    ours = sample(kernel, 3, 10, 5, seed=5, progress=False, check=False)
    theirs = sample(make(), 3, 20, 10, seed=5, progress=False, check=False)
    for name in theirs.posterior.data_vars:
        assert (ours.posterior[name].values == theirs.posterior[name].values[:, 1::2]).all()
    with pytest.raises(ValueError, match="inner_steps"):
        ReplicaExchange(make(), [1.0, 0.5], inner_steps=0)


# --------------------------------------------------------------- (d) pyro.infer.MCMC
def test_runs_under_pyro_mcmc():
    num_bits, coupling, field = 6, 1.2, 0.15
    model, _, _ = curie_weiss(num_bits, coupling, field)
    kernel = ReplicaExchange(DiscreteGibbs(model), betas=3, min_beta=0.1)
    kernel.initial_params = {"x": torch.zeros(num_bits, dtype=DT)}
    mcmc = MCMC(kernel, num_samples=400, warmup_steps=100, disable_progbar=True)
    mcmc.run()
    x = mcmc.get_samples()["x"]
    assert x.shape == (400, num_bits)
    exact = ones_distribution(num_bits, coupling, field)
    majority = float((x.sum(-1) > num_bits / 2).double().mean())
    assert abs(majority - float(exact[num_bits // 2 + 1 :].sum())) < 0.15
    assert kernel.swap_summary().round_trips.sum() > 0
    assert "swap rate" in kernel.logging()


# ---------------------------------------------- (e) continuous MALA, gradient kernels
def mixture_model():
    """x ~ N(0, 3^2) times a two-component likelihood with modes at -3 and 3."""
    x = pyro.sample("x", dist.Normal(torch.zeros((), dtype=DT), 3.0))
    locs = torch.tensor([-3.0, 3.0], dtype=DT)
    log_w = torch.tensor([0.3, 0.7], dtype=DT).log()
    lik = torch.logsumexp(log_w + dist.Normal(locs, 0.4).log_prob(x.unsqueeze(-1)), -1)
    pyro.factor("lik", lik)


def mixture_truth():
    grid = torch.linspace(-15, 15, 300001, dtype=DT)
    locs = torch.tensor([-3.0, 3.0], dtype=DT)
    log_w = torch.tensor([0.3, 0.7], dtype=DT).log()
    log_p = dist.Normal(0.0, 3.0).log_prob(grid) + torch.logsumexp(
        log_w + dist.Normal(locs, 0.4).log_prob(grid.unsqueeze(-1)), -1
    )
    w = normalise(log_p)
    return float((w * grid).sum()), float(w[grid > 0].sum())


def test_mala_replica_exchange_finds_both_modes():
    mean, mass = mixture_truth()
    start = {"x": torch.tensor(-3.0, dtype=DT)}
    kernel = ReplicaExchange(
        MetropolisHastings(mixture_model, proposal="mala", step_size=0.3),
        betas=6,
        min_beta=0.02,
    )
    idata = sample(kernel, 64, 400, 300, seed=2, progress=False, check=False, initial_params=start)
    x = torch.as_tensor(idata.posterior["x"].values)  # (chain, draw)
    for value, truth in ((x, mean), ((x > 0).to(DT), mass)):
        assert _z_score(value, truth) < 4
    # Step sizes stay with their temperatures: adapted per slot, larger where it is hotter.
    step = kernel._last.inner.adaptation.log_step_size_avg.exp().reshape(6, 64)
    assert bool((step.mean(-1).diff() > 0).all())
    # Plain MALA from the same start: most chains never leave the left mode.
    plain = sample(
        MetropolisHastings(mixture_model, proposal="mala", step_size=0.3),
        64,
        400,
        300,
        seed=2,
        progress=False,
        check=False,
        initial_params=start,
    )
    assert _z_score((torch.as_tensor(plain.posterior["x"].values) > 0).to(DT), mass) > 4


def _z_score(value, truth):
    """|mean - truth| / MCSE over independent chains (the spread of their means)."""
    per_chain = value.mean(-1)
    mcse = float(per_chain.std() / math.sqrt(per_chain.numel()))
    return abs(float(per_chain.mean()) - truth) / mcse


def test_gradients_are_those_of_the_tempered_density():
    prior = torch.tensor([0.3, 0.6, 0.45, 0.5], dtype=DT)
    model, log_prior, log_likelihood = curie_weiss(4, 1.0, 0.3, prior)
    kernel = GibbsWithGradients(model)
    target = kernel.target
    states = all_states(target.cardinalities)
    beta = torch.linspace(1.0, 0.1, states.shape[0], dtype=DT)
    with target.tempered(beta):
        ratios = kernel.ratio_fn(states)
    x = states.to(DT).requires_grad_(True)
    (grad,) = torch.autograd.grad((log_prior(x) + beta * log_likelihood(x)).sum(), x)
    # First-order estimate of flipping bit d: grad_d * (1 - 2 x_d).
    flip = ratios.log_ratios.gather(2, (1 - states).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(flip, grad * (1 - 2 * states.to(DT)), atol=TOL)
    # MALA: the gradient of the tempered unconstrained log density.
    mh = MetropolisHastings(mixture_model, proposal="mala")
    z = torch.linspace(-4, 4, 7, dtype=DT).unsqueeze(-1)
    b = torch.linspace(1.0, 0.2, 7, dtype=DT)
    with mh.target.tempered(b):
        _, g = value_and_grad(mh.log_density_fn, torch.zeros(7, 0, dtype=torch.long), z)
    zz = z.squeeze(-1).clone().requires_grad_(True)
    locs = torch.tensor([-3.0, 3.0], dtype=DT)
    log_w = torch.tensor([0.3, 0.7], dtype=DT).log()
    lik = torch.logsumexp(log_w + dist.Normal(locs, 0.4).log_prob(zz.unsqueeze(-1)), -1)
    (expected,) = torch.autograd.grad((dist.Normal(0.0, 3.0).log_prob(zz) + b * lik).sum(), zz)
    assert torch.allclose(g.squeeze(-1), expected, atol=TOL)


def test_gibbs_with_gradients_replica_exchange_matches_enumeration():
    num_bits, coupling, field = 8, 1.4, 0.1
    model, _, _ = curie_weiss(num_bits, coupling, field)
    kernel = ReplicaExchange(GibbsWithGradients(model, moves_per_step=4), betas=4, min_beta=0.05)
    idata = sample(
        kernel,
        200,
        100,
        200,
        seed=4,
        progress=False,
        check=False,
        initial_params={"x": torch.zeros(num_bits, dtype=DT)},
    )
    ones = torch.as_tensor(idata.posterior["x"].values[:, -1]).sum(-1).long()
    assert chi_square_pvalue(ones, ones_distribution(num_bits, coupling, field)) > ALPHA


# --------------------------------------------------------------- (f) validation
def test_bad_arguments_are_rejected():
    model, _, _ = curie_weiss(3, 1.0, 0.0)
    gibbs = DiscreteGibbs(model)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ReplicaExchange(gibbs, betas=[1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="start at 1"):
        ReplicaExchange(gibbs, betas=[0.9, 0.5])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ReplicaExchange(gibbs, betas=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ReplicaExchange(gibbs, betas=[1.0, 1.5])
    with pytest.raises(ValueError, match="non-empty"):
        ReplicaExchange(gibbs, betas=[])
    with pytest.raises(ValueError, match="number of replicas"):
        ReplicaExchange(gibbs, betas=0)
    with pytest.raises(TypeError, match="betas"):
        ReplicaExchange(gibbs, betas="1,0.5")
    with pytest.raises(ValueError, match="swap"):
        ReplicaExchange(gibbs, swap="random")
    with pytest.raises(TypeError, match="adapt_ladder"):
        ReplicaExchange(gibbs, adapt_ladder=1)
    with pytest.raises(ValueError, match="min_beta"):
        ReplicaExchange(gibbs, betas=3, min_beta=1.0)
    with pytest.raises(TypeError, match="kernel"):
        ReplicaExchange(model)
    with pytest.raises(TypeError, match="kernel"):
        ReplicaExchange(ReplicaExchange(gibbs))

    def prior_only():
        pyro.sample("x", dist.Bernoulli(torch.full((3,), 0.3, dtype=DT)).to_event(1))

    with pytest.raises(ValueError, match=r"no observed sites and no pyro\.factor"):
        sample(ReplicaExchange(DiscreteGibbs(prior_only)), 2, 2, 0, seed=0, progress=False)
    target = gibbs.target
    with pytest.raises(ValueError, match="last batch dim"):
        target.log_joint(
            target.discrete_values(torch.zeros(4, 3, dtype=torch.long)),
            1,
            beta=torch.ones(3, dtype=DT),
        )


# ------------------------------------------------- (g) the ladder, (h) sample_stats
def test_swap_bookkeeping():
    swapped = torch.tensor([[True, False], [False, False], [False, True]])
    assert swap_index(swapped).tolist() == [[1, 0], [0, 1], [2, 3], [3, 2]]
    direction = torch.tensor([[1, -1], [0, 0], [-1, 0]])
    new, trips = update_round_trips(direction, torch.zeros(2, dtype=DT))
    assert trips.tolist() == [1.0, 0.0]  # chain 0's label at beta_0 came back from beta_R
    assert new.tolist() == [[0, 0], [0, 0], [-1, 1]]
    # The barrier of equal rejections is linear: an already equalised ladder stays put.
    betas = torch.tensor([1.0, 0.6, 0.3, 0.1], dtype=DT)
    assert torch.allclose(equalised_ladder(betas, torch.full((3,), 0.2, dtype=DT)), betas)


def _rbm_rates(kernel, seed):
    rbm_sample = sample(kernel, 32, 400, 600, seed=seed, progress=False, check=False)
    return rbm_sample, kernel.swap_summary().swap_accept_rate


def test_adaptive_ladder_equalises_swap_rates_and_is_frozen_after_warmup():
    rbm = make_rbm(12, 6, seed=1)
    betas = [1.0, 0.95, 0.9, 0.85, 0.1]  # crowded at the cold end: very uneven rates
    _, fixed = _rbm_rates(ReplicaExchange(BlockGibbs(rbm), betas, adapt_ladder=False), 0)
    adaptive = ReplicaExchange(BlockGibbs(rbm), betas)
    _, adapted = _rbm_rates(adaptive, 0)
    spread = lambda r: float(r.max() - r.min())  # noqa: E731
    print(f"swap rates fixed {fixed.tolist()}, adapted {adapted.tolist()}")
    assert spread(adapted) < 0.5 * spread(fixed)
    assert adaptive.betas[0] == 1 and adaptive.betas[-1] == pytest.approx(0.1)
    assert not torch.allclose(adaptive.betas, torch.tensor(betas, dtype=DT))
    # Frozen after warm-up: steps with warmup=False never move the ladder.
    g = torch.Generator().manual_seed(0)
    state = adaptive.init_chains(4, generator=g)
    for _ in range(40):
        state, _ = adaptive.step_chains(state, generator=g, warmup=True)
    warm = state.betas.clone()
    assert not torch.equal(warm, torch.tensor(betas, dtype=DT))
    for _ in range(100):
        state, _ = adaptive.step_chains(state, generator=g, warmup=False)
    assert torch.equal(state.betas, warm)
    assert torch.equal(adaptive.betas, warm)


def test_sample_stats_hold_swap_rates_and_round_trips():
    kernel = ReplicaExchange(BlockGibbs(make_rbm(6, 3)), betas=4, swap="stochastic")
    idata = sample(kernel, 5, 60, 40, seed=0, progress=False, check=False)
    stats = idata.sample_stats
    rates = torch.stack(
        [torch.as_tensor(stats[f"swap_accept_rate_{r}"].values) for r in range(3)], -1
    )
    assert rates.shape == (5, 60, 3)
    assert bool(((rates >= 0) & (rates <= 1)).all())
    trips = torch.as_tensor(stats["round_trips"].values)
    assert bool((trips.diff(dim=1) >= 0).all()) and float(trips[:, -1].sum()) > 0
    summary = kernel.swap_summary()
    assert torch.allclose(trips[:, -1], summary.round_trips)
    assert torch.allclose(rates[:, -1], summary.swap_accept_rate_per_chain.float().double())
    assert torch.allclose(
        torch.as_tensor(stats["round_trip_rate"].values[:, -1]), summary.round_trip_rate
    )
    single = sample(
        ReplicaExchange(BlockGibbs(make_rbm(6, 3)), [1.0]),
        2,
        5,
        0,
        seed=0,
        progress=False,
        check=False,
    )
    assert "swap_accept_rate_0" not in single.sample_stats


def test_per_chain_temperatures_follow_chain_subsets():
    """Gibbs updates chains in groups (by cardinality, by plate block): each chain's
    conditional must use its own beta, as computed one chain at a time."""
    from pyrogen.infer.discrete_gibbs import coordinate_log_conditional
    from tests.common import categorical_model

    target = DiscreteGibbs(categorical_model).target
    states = all_states(target.cardinalities)
    coordinate = torch.arange(states.shape[0]) % states.shape[1]  # mixed cardinalities
    beta = torch.linspace(1.0, 0.1, states.shape[0], dtype=DT)
    batched = coordinate_log_conditional(
        states, coordinate, ChainLogJoint(target, beta), target.cardinalities
    )
    for i in range(states.shape[0]):
        one = coordinate_log_conditional(
            states[i : i + 1],
            coordinate[i : i + 1],
            ChainLogJoint(target, beta[i : i + 1]),
            target.cardinalities,
        )
        assert torch.allclose(batched[i : i + 1], one, atol=TOL, equal_nan=True)
    # A plate-blocked sweep under replica exchange runs (plate_dims keep the chain dim).
    kernel = ReplicaExchange(DiscreteGibbs(categorical_model), betas=3)
    assert kernel.kernel.plan.plate
    sample(kernel, 4, 5, 5, seed=0, progress=False, check=False)
