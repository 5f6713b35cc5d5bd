"""Locally informed discrete kernels (LocallyBalanced, GibbsWithGradients, DiscreteLangevin):
neighbour ratios against enumeration, exact transition matrices (stationarity and detailed
balance to 1e-10), and one step of each implementation against the exact row (chi-square).

Each chi-square test fails with probability ALPHA = 1e-4 when the kernel is correct.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyrogen.infer import DiscreteLangevin, GibbsWithGradients, LocallyBalanced
from pyrogen.infer.discrete_langevin import (
    langevin_init,
    langevin_log_proposal,
    langevin_step,
)
from pyrogen.infer.locally_balanced import (
    BALANCING,
    InformedState,
    informed_step,
    proposal_log_probs,
)
from pyrogen.infer.proposal import accept_prob, log_accept_ratio
from tests.common import (
    COMPOSITION_Y,
    DT,
    all_states,
    categorical_log_prob,
    categorical_model,
    chi_square_pvalue,
    composition_log_prob,
    composition_model,
    ising_log_prob,
    ising_model,
    make_rbm,
    normalise,
    state_index,
)

TOL = 1e-10
ALPHA = 1e-4
RBM6 = make_rbm(6, 3, seed=1)


def _target(name):
    if name == "composition":
        model = composition_model(RBM6)
        return model, (COMPOSITION_Y,), lambda s: composition_log_prob(RBM6, COMPOSITION_Y, s)
    return {
        "ising": (ising_model, (), ising_log_prob),
        "categorical": (categorical_model, (), categorical_log_prob),
    }[name]


NAMES = ["ising", "categorical", "composition"]


@pytest.mark.parametrize("name", NAMES)
def test_exact_ratios_match_enumeration(name):
    model, args, log_prob = _target(name)
    kernel = LocallyBalanced(model, model_args=args)
    cards = kernel.target.cardinalities
    states = all_states(cards)
    ratios = kernel.ratio_fn(states)
    base = log_prob(states)
    offset = ratios.log_density - base  # the hand-written targets drop constants
    assert torch.allclose(offset, offset[:1].expand_as(offset), atol=TOL, rtol=0)
    for d in range(len(cards)):
        for j in range(int(cards.max())):
            if j >= int(cards[d]):
                assert bool((ratios.log_ratios[:, d, j] == -math.inf).all())
                continue
            expected = log_prob(states.index_fill(1, torch.tensor([d]), j)) - base
            assert torch.allclose(ratios.log_ratios[:, d, j], expected, atol=TOL, rtol=0)


def test_gradient_ratios_are_exact_for_a_multilinear_target():
    """The Ising log density is linear in each bit: the first-order estimate is exact."""
    exact = LocallyBalanced(ising_model).ratio_fn
    grad = GibbsWithGradients(ising_model).ratio_fn
    states = all_states(torch.full((6,), 2))
    assert torch.allclose(grad(states).log_ratios, exact(states).log_ratios, atol=TOL, rtol=0)


def test_gradient_ratios_are_the_first_order_estimate():
    """Composition model (softplus terms, not multilinear): r_dj = dlogp/dx_d (j - x_d), the
    derivative taken by central differences of the model at relaxed values."""
    model = composition_model(RBM6)
    kernel = GibbsWithGradients(model, model_args=(COMPOSITION_Y,))
    target = kernel.target
    states = all_states(target.cardinalities)[::7]
    ratios = kernel.ratio_fn(states).log_ratios
    h = 1e-6
    x = states.to(DT)
    with pyro.validation_enabled(False):
        for d in range(6):
            up, down = x.clone(), x.clone()
            up[:, d] += h
            down[:, d] -= h
            slope = (target.log_joint({"v": up}, 1) - target.log_joint({"v": down}, 1)) / (2 * h)
            other = 1 - states[:, d]
            estimate = ratios[torch.arange(len(states)), d, other]
            assert torch.allclose(estimate, slope * (other - states[:, d]).to(DT), atol=1e-6)
    # ... and differs from the exact ratio (this target is not multilinear).
    exact = LocallyBalanced(model, model_args=(COMPOSITION_Y,)).ratio_fn(states).log_ratios
    assert float((exact - ratios).nan_to_num(0.0).abs().max()) > 1e-3


def informed_matrix(kernel, balancing: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pi, P) of one informed move from the kernel's own ratios and proposal."""
    cards = kernel.target.cardinalities
    states = all_states(cards)
    n, width = len(states), int(cards.max())
    ratios = kernel.ratio_fn(states)
    balance = BALANCING[balancing]
    log_q = proposal_log_probs(states, ratios.log_ratios, balance)  # (n, D * K)
    P = torch.zeros(n, n, dtype=DT)
    for flat in range(log_q.shape[1]):
        d, j = divmod(flat, width)
        if j >= int(cards[d]):
            continue
        target = states.index_fill(1, torch.tensor([d]), j)
        cols = state_index(target, cards)
        back = d * width + states[:, d]
        log_q_back = log_q[cols, back]
        log_r = log_accept_ratio(
            ratios.log_density[cols], ratios.log_density, log_q[:, flat], log_q_back
        )
        moves = log_q[:, flat].exp() * accept_prob(log_r)
        P[torch.arange(n), cols] += torch.where(states[:, d] == j, torch.zeros_like(moves), moves)
    P[torch.arange(n), torch.arange(n)] += 1 - P.sum(-1)
    return normalise(ratios.log_density), P


KERNELS = {
    "lb_sqrt": (lambda m, a: LocallyBalanced(m, model_args=a), "sqrt"),
    "lb_barker": (lambda m, a: LocallyBalanced(m, "barker", model_args=a), "barker"),
    "gwg": (lambda m, a: GibbsWithGradients(m, model_args=a), "sqrt"),
}


@pytest.mark.parametrize("kernel_name", list(KERNELS))
@pytest.mark.parametrize("name", NAMES)
def test_informed_move_is_reversible(name, kernel_name):
    model, args, log_prob = _target(name)
    factory, balancing = KERNELS[kernel_name]
    kernel = factory(model, args)
    pi, P = informed_matrix(kernel, balancing)
    assert torch.allclose(pi, normalise(log_prob(all_states(kernel.target.cardinalities))))
    assert bool((P >= -TOL).all())
    assert float((pi @ P - pi).abs().max()) < TOL
    flow = pi.unsqueeze(-1) * P
    assert float((flow - flow.T).abs().max()) < TOL


@pytest.mark.parametrize("kernel_name", ["lb_sqrt", "gwg"])
@pytest.mark.parametrize("name", ["categorical", "composition"])
def test_one_informed_step_matches_the_exact_row(name, kernel_name):
    model, args, _ = _target(name)
    factory, balancing = KERNELS[kernel_name]
    kernel = factory(model, args)
    cards = kernel.target.cardinalities
    _, P = informed_matrix(kernel, balancing)
    states = all_states(cards)
    start = states[len(states) // 2]
    n = 20_000
    init = kernel.ratio_fn(start.unsqueeze(0))
    state = InformedState(
        start.expand(n, -1),
        init.log_density.expand(n),
        init.log_ratios.expand(n, -1, -1),
    )
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        new, _ = informed_step(g, state, kernel.ratio_fn, BALANCING[balancing])
    row = P[state_index(start, cards)]
    assert chi_square_pvalue(state_index(new.discrete, cards), row) > ALPHA
    # the kept log densities and ratios are those of the kept states
    again = kernel.ratio_fn(new.discrete[:50])
    assert torch.allclose(new.log_density[:50], again.log_density, atol=TOL, rtol=0)
    assert torch.allclose(new.log_ratios[:50], again.log_ratios, atol=TOL, rtol=0)


# ------------------------------------------------------------------ DiscreteLangevin
ALPHA_STEP = 0.7


def langevin_matrix(kernel) -> tuple[torch.Tensor, torch.Tensor]:
    """(pi, P) of one DMALA move with step size ALPHA_STEP: every pair of states."""
    target = kernel.target
    cards = target.cardinalities
    states = all_states(cards)
    n = len(states)
    ratios = kernel._ratio_fn(states)
    alpha = torch.full((n,), ALPHA_STEP, dtype=DT)
    log_q = langevin_log_proposal(states, ratios.log_ratios, kernel._distances, alpha)
    # log q(y | x) for every (x, y): sum over coordinates of log q_d(y_d | x)
    index = states.unsqueeze(0).expand(n, -1, -1).unsqueeze(-1)  # [x, y, d, 1] = y_d
    forward = log_q.unsqueeze(1).expand(n, n, *log_q.shape[1:]).gather(3, index)
    forward = forward.squeeze(-1).sum(-1)  # [x, y]
    log_r = ratios.log_density.unsqueeze(0) - ratios.log_density.unsqueeze(1)
    log_r = log_r + forward.T - forward
    P = forward.exp() * accept_prob(torch.nan_to_num(log_r, nan=-math.inf))
    P.fill_diagonal_(0.0)
    P[torch.arange(n), torch.arange(n)] = 1 - P.sum(-1)
    return normalise(ratios.log_density), P


@pytest.mark.parametrize("name", NAMES)
def test_discrete_langevin_is_reversible(name):
    model, args, log_prob = _target(name)
    kernel = DiscreteLangevin(model, model_args=args)
    pi, P = langevin_matrix(kernel)
    assert torch.allclose(pi, normalise(log_prob(all_states(kernel.target.cardinalities))))
    assert bool((P >= -TOL).all())
    assert float((pi @ P - pi).abs().max()) < TOL
    flow = pi.unsqueeze(-1) * P
    assert float((flow - flow.T).abs().max()) < TOL


@pytest.mark.parametrize("name", ["categorical", "composition"])
def test_one_langevin_step_matches_the_exact_row(name):
    model, args, _ = _target(name)
    kernel = DiscreteLangevin(model, ALPHA_STEP, model_args=args)
    cards = kernel.target.cardinalities
    _, P = langevin_matrix(kernel)
    states = all_states(cards)
    start = states[len(states) // 2]
    n = 20_000
    g = torch.Generator().manual_seed(3)
    state = langevin_init(start.expand(n, -1), kernel._ratio_fn, ALPHA_STEP)
    with torch.no_grad():
        new, info = langevin_step(
            g, state, kernel._ratio_fn, kernel._distances, True, 0.574, warmup=False
        )
    assert torch.allclose(info["step_size"], torch.full((n,), ALPHA_STEP, dtype=DT))
    row = P[state_index(start, cards)]
    assert chi_square_pvalue(state_index(new.discrete, cards), row) > ALPHA


def test_discrete_langevin_adapts_and_warns_when_unadjusted():
    from pyrogen.infer import sample

    kernel = DiscreteLangevin(ising_model, 0.05)
    idata = sample(kernel, 8, 50, 200, seed=0, progress=False, check=False)
    accept = float(idata.sample_stats["accept_prob"].mean())
    assert 0.4 < accept < 0.75  # adapted towards 0.574 from a far too small step
    assert float(idata.sample_stats["step_size"].mean()) > 0.1
    with pytest.warns(UserWarning, match="biased"):
        DiscreteLangevin(ising_model, adjusted=False)
    with pytest.raises(TypeError, match="adjusted"):
        DiscreteLangevin(ising_model, adjusted=1)
    with pytest.raises(ValueError, match="balancing"):
        LocallyBalanced(ising_model, "square")
    with pytest.raises(ValueError, match="no latent discrete"):
        _ = GibbsWithGradients(lambda: pyro.sample("m", pyro.distributions.Normal(0.0, 1.0))).target
