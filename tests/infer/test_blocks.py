"""Blocked Gibbs (plate blocks, colourings): exact conditionals, exact sweep matrices, one
sweep's empirical transition against the exact row, and detection of plate independence.

Statistical tests fail with probability ALPHA = 1e-4 each when the kernel is correct.
"""

from __future__ import annotations

import itertools
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import NUTS

from pyrogen.infer import DiscreteGibbs, GibbsWithinHMC
from pyrogen.infer.discrete_gibbs import DiscreteGibbsState, blocked_gibbs_sweep
from pyrogen.infer.gibbs_blocks import (
    GibbsPlan,
    colour_log_conditional,
    plate_block_log_conditional,
)
from tests.common import (
    DT,
    all_states,
    categorical_log_prob,
    categorical_model,
    chi_square_pvalue,
    ising_log_prob,
    ising_model,
    normalise,
    state_index,
)

TOL = 1e-10
ALPHA = 1e-4
CHECKERBOARD = torch.tensor([0, 1, 0, 1, 0, 1])  # the 6-spin Ising graph is bipartite


# ------------------------------------------------------------------- tiny targets
EVENT_LOGITS = torch.tensor([[0.4, -0.3], [-0.8, 0.2], [0.1, 0.9]], dtype=DT)


def event_plate_model() -> None:
    """A plate of 3 pairs of coupled bits (event dim inside a plate) plus a global bit."""
    g = pyro.sample("g", dist.Bernoulli(torch.tensor(0.4, dtype=DT)))
    with pyro.plate("pairs", 3):
        x = pyro.sample("x", dist.Bernoulli(logits=EVENT_LOGITS).to_event(1))
        pyro.factor("pair", 1.3 * x[..., 0] * x[..., 1] - 0.7 * g * x[..., 1])


def event_plate_log_prob(states: torch.Tensor) -> torch.Tensor:
    """Columns (g, x_00, x_01, x_10, x_11, x_20, x_21)."""
    s = states.to(DT)
    g, x = s[:, 0], s[:, 1:].reshape(-1, 3, 2)
    log_g = torch.where(
        g == 1, torch.log(torch.tensor(0.4, dtype=DT)), torch.log(torch.tensor(0.6, dtype=DT))
    )
    log_x = (x * EVENT_LOGITS - torch.nn.functional.softplus(EVENT_LOGITS)).sum((-1, -2))
    pair = (1.3 * x[..., 0] * x[..., 1] - 0.7 * g.unsqueeze(-1) * x[..., 1]).sum(-1)
    return log_g + log_x + pair


# A 3-state Potts chain of 5 sites coloured 0,1,2,0,1 plus a bit: colours of sizes 2, 2 and
# 1 (two groups of one call each) and k = 3 (candidates shift values by 1 and 2).
POTTS_FIELD = torch.tensor([[0.3, -0.2, 0.0], [0.0, 0.5, -0.4], [-0.6, 0.1, 0.2],
                            [0.2, 0.2, -0.1], [0.0, -0.3, 0.4]], dtype=DT)  # fmt: skip
POTTS_COLOURS = torch.tensor([0, 1, 2, 0, 1])


def potts_model() -> None:
    x = pyro.sample("x", dist.Categorical(logits=POTTS_FIELD).to_event(1))
    b = pyro.sample("b", dist.Bernoulli(torch.tensor(0.3, dtype=DT)))
    same = (x[..., 1:] == x[..., :-1]).to(DT).sum(-1)
    pyro.factor("potts", 0.9 * same - 0.8 * b * (x[..., 2] == 1).to(DT))


def potts_log_prob(states: torch.Tensor) -> torch.Tensor:
    """Columns (x_0..x_4, b)."""
    x, b = states[:, :5], states[:, 5].to(DT)
    log_x = POTTS_FIELD.log_softmax(-1).gather(1, x.T).sum(0)
    log_b = torch.where(b > 0, torch.tensor(0.3, dtype=DT).log(), torch.tensor(0.7, dtype=DT).log())
    same = (x[:, 1:] == x[:, :-1]).to(DT).sum(-1)
    return log_x + log_b + 0.9 * same - 0.8 * b * (x[:, 2] == 1).to(DT)


TARGETS = {
    "categorical": (categorical_model, categorical_log_prob, "auto"),
    "event_plate": (event_plate_model, event_plate_log_prob, "auto"),
    "ising_colours": (ising_model, ising_log_prob, {"x": CHECKERBOARD}),
    "potts_colours": (potts_model, potts_log_prob, {"x": POTTS_COLOURS}),
}


def unit_matrices(kernel: DiscreteGibbs) -> list[torch.Tensor]:
    """The transition matrix of every update unit of the kernel's plan, from the kernel's own
    block conditionals: P_u(x, y) = prod_{i in u} p(y_i | x_{-u}) when y = x off u."""
    plan, cards = kernel.plan, kernel.target.cardinalities
    states = all_states(cards)
    n = len(states)
    mats = []

    def matrix(coords: torch.Tensor, log_cond: torch.Tensor) -> torch.Tensor:
        # coords (B,), log_cond (n, B, k): all k^B joint values of the unit's coordinates
        P = torch.zeros(n, n, dtype=DT)
        k = log_cond.shape[-1]
        for values in itertools.product(range(k), repeat=len(coords)):
            v = torch.tensor(values)
            target = states.clone()
            target[:, coords] = v
            prob = log_cond.gather(2, v.expand(n, -1).unsqueeze(-1)).squeeze(-1).sum(-1).exp()
            P[torch.arange(n), state_index(target, cards)] += prob
        return P

    with torch.no_grad():
        for block in plan.plate:
            for row in block.coordinates:
                coords = row.expand(n, -1)
                log_cond = plate_block_log_conditional(states, coords, block, kernel.log_joint_fn)
                mats.append(matrix(row, log_cond))
        for block in plan.colour:
            log_cond = colour_log_conditional(states, block, kernel.log_joint_fn)
            mats.append(matrix(block.coordinates, log_cond))
        for d in plan.singles.tolist():
            log_cond = torch.stack(
                [
                    kernel.log_joint_fn(states.index_fill(1, torch.tensor([d]), j))
                    for j in range(int(cards[d]))
                ],
                -1,
            ).log_softmax(-1)
            mats.append(matrix(torch.tensor([d]), log_cond.unsqueeze(1)))
    return mats


@pytest.mark.parametrize("name", list(TARGETS))
def test_block_conditionals_are_exact(name):
    model, log_prob, blocks = TARGETS[name]
    kernel = DiscreteGibbs(model, blocks=blocks)
    plan, cards = kernel.plan, kernel.target.cardinalities
    assert plan.plate or plan.colour  # the target has blocks to test
    states = all_states(cards)
    log_p = log_prob(states)
    units = [(b, row) for b in plan.plate for row in b.coordinates] + [
        (b, b.coordinates) for b in plan.colour
    ]
    for block, coords in units:
        if hasattr(block, "plate_dims"):
            cond = plate_block_log_conditional(
                states, coords.expand(len(states), -1), block, kernel.log_joint_fn
            )
        else:
            cond = colour_log_conditional(states, block, kernel.log_joint_fn)
        for col, d in enumerate(coords.tolist()):
            # By hand: P(x_d = j | rest) from the enumerated target.
            expected = torch.stack(
                [
                    log_prob(states.index_fill(1, torch.tensor([d]), j))
                    for j in range(int(cards[d]))
                ],
                -1,
            ).log_softmax(-1)
            assert torch.allclose(cond[:, col], expected, atol=TOL, rtol=0)
    assert torch.isfinite(log_p).all()


@pytest.mark.parametrize("name", list(TARGETS))
def test_blocked_permutation_sweep_is_reversible(name):
    model, log_prob, blocks = TARGETS[name]
    kernel = DiscreteGibbs(model, blocks=blocks)
    pi = normalise(log_prob(all_states(kernel.target.cardinalities)))
    mats = unit_matrices(kernel)
    for P in mats:  # every unit is an exact (reversible) Gibbs update
        flow = pi.unsqueeze(-1) * P
        assert float((flow - flow.T).abs().max()) < TOL
    sweep = torch.zeros_like(mats[0])
    orders = list(itertools.permutations(range(len(mats))))
    for order in orders:
        product = torch.eye(len(pi), dtype=DT)
        for u in order:
            product = product @ mats[u]
        sweep += product / len(orders)
    assert float((pi @ sweep - pi).abs().max()) < TOL
    flow = pi.unsqueeze(-1) * sweep
    assert float((flow - flow.T).abs().max()) < TOL


@pytest.mark.parametrize("scan", ["permutation", "systematic"])
@pytest.mark.parametrize("name", list(TARGETS))
def test_one_blocked_sweep_matches_the_exact_row(name, scan):
    """20,000 chains from one state, one sweep of the implementation, against the exact row
    of the sweep matrix (chi-square, ALPHA)."""
    model, _, blocks = TARGETS[name]
    kernel = DiscreteGibbs(model, scan, blocks=blocks)
    cards = kernel.target.cardinalities
    mats = unit_matrices(kernel)
    if scan == "systematic":
        sweep = torch.linalg.multi_dot(mats) if len(mats) > 1 else mats[0]
    else:
        sweep = torch.zeros_like(mats[0])
        orders = list(itertools.permutations(range(len(mats))))
        for order in orders:
            product = torch.eye(len(mats[0]), dtype=DT)
            for u in order:
                product = product @ mats[u]
            sweep += product / len(orders)
    states = all_states(cards)
    start = states[len(states) // 3]
    n = 20_000
    state = DiscreteGibbsState(start.expand(n, -1).clone())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        new = blocked_gibbs_sweep(
            state, kernel.plan, kernel.log_joint_fn, cards, g, scan, kernel.target.coordinate_names
        )
    assert torch.equal(state.discrete, start.expand(n, -1))  # the input is not mutated
    row = sweep[state_index(start, cards)]
    assert chi_square_pvalue(state_index(new.discrete, cards), row) > ALPHA


# ----------------------------------------------------------------- detection
def mixture_assignments(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3, dtype=DT) / 3))
        pyro.sample("y", dist.Normal(torch.tensor([-2.0, 0.0, 2.0], dtype=DT)[z], 1.0), obs=y)


def coupled_by_a_factor(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.5, dtype=DT)))
        pyro.sample("y", dist.Normal(z, 1.0), obs=y)
    pyro.factor("count", 0.4 * z.sum(-1, keepdim=True) ** 2)  # couples the elements


def mixed_by_indexing(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.5, dtype=DT)))
        pyro.sample("y", dist.Normal(z.roll(1, -1), 1.0), obs=y)  # breaks the plate contract


Y = torch.tensor([-1.9, 0.3, 2.2, 0.1], dtype=DT)


def test_plates_are_blocked_only_when_independent():
    plan = DiscreteGibbs(mixture_assignments, model_args=(Y,)).plan
    assert [b.site for b in plan.plate] == ["z"] and plan.singles.numel() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found by the dependency analysis: no warning
        plan = DiscreteGibbs(coupled_by_a_factor, model_args=(Y,)).plan
    assert not plan.plate and plan.singles.tolist() == [0, 1, 2, 3]
    with pytest.warns(UserWarning, match="not conditionally independent"):
        plan = DiscreteGibbs(mixed_by_indexing, model_args=(Y,)).plan
    assert not plan.plate and plan.singles.numel() == 4
    plan = DiscreteGibbs(mixture_assignments, blocks="none", model_args=(Y,)).plan
    assert plan == GibbsPlan((), (), plan.singles) and plan.singles.numel() == 4


def test_plate_check_allows_float32_rounding_at_large_log_joints():
    # A float32 mixture with 300 points far from the components: the full log joint is
    # ~1e5, so the single-site conditionals carry rounding errors far above 1e-4 in log
    # space. The plate is still conditionally independent and must be blocked, silently.
    y = torch.linspace(-40.0, 40.0, 300)

    def far_mixture(y):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(3), 10.0).to_event(1))
        with pyro.plate("data", len(y)):
            z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
            pyro.sample("obs", dist.Normal(loc[z], 0.05), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel = GibbsWithinHMC(NUTS(far_mixture))
        kernel.setup(0, y)
    assert [b.site for b in kernel.plan.plate] == ["z"] and kernel.plan.singles.numel() == 0
    kernel.cleanup()
    with pytest.warns(UserWarning, match="not conditionally independent"):
        plan = DiscreteGibbs(mixed_by_indexing, model_args=(Y.float(),)).plan
    assert not plan.plate


def test_colouring_is_checked():
    with pytest.raises(ValueError, match="interact"):
        _ = DiscreteGibbs(ising_model, blocks={"x": torch.tensor([0, 0, 1, 1, 0, 1])}).plan
    with pytest.raises(ValueError, match="coordinate shape"):
        _ = DiscreteGibbs(ising_model, blocks={"x": torch.tensor([0, 1])}).plan
    with pytest.raises(TypeError, match="integer"):
        _ = DiscreteGibbs(ising_model, blocks={"x": CHECKERBOARD.float()}).plan
    with pytest.raises(ValueError, match="not a latent discrete site"):
        _ = DiscreteGibbs(ising_model, blocks={"y": CHECKERBOARD}).plan
    with pytest.raises(ValueError, match="blocks"):
        DiscreteGibbs(ising_model, blocks="plates")
    with pytest.raises(TypeError, match="blocks"):
        DiscreteGibbs(ising_model, blocks=3)


def test_gibbs_within_hmc_blocks_the_assignments():
    def gmm(y):
        loc = pyro.sample("loc", dist.Normal(torch.tensor([-2.0, 2.0], dtype=DT), 1.0).to_event(1))
        with pyro.plate("data", len(y)):
            z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.5, dtype=DT)))
            pyro.sample("obs", dist.Normal(loc[z.long()], 1.0), obs=y)

    kernel = GibbsWithinHMC(NUTS(gmm))
    kernel.setup(0, Y)
    assert [b.site for b in kernel.plan.plate] == ["z"]
    loc = torch.tensor([-1.5, 2.2], dtype=DT)
    fn = kernel.gibbs_log_joint_fn({"loc": loc})
    block = kernel.plan.plate[0]
    states = all_states(kernel._target.cardinalities)
    cond = plate_block_log_conditional(states, block.coordinates.expand(len(states), -1), block, fn)
    expected = (dist.Normal(loc, 1.0).log_prob(Y.unsqueeze(-1))).log_softmax(-1)
    assert torch.allclose(cond, expected.expand_as(cond), atol=TOL, rtol=0)
    kernel.cleanup()
