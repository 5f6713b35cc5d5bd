"""The pure cores behind MetropolisHastings (flip, random_walk, mala, user_proposal).

MetropolisHastings is an adapter over them: stepping a core by hand with the kernel's log
density gives exactly the kernel's chains; the old names of pyrogen.infer.metropolis are the
cores' objects; each core is a pure function of its inputs.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer import MetropolisHastings, flip, mala, metropolis, random_walk, user_proposal

DT = torch.float64
Y = torch.tensor([0.3, 1.2, 0.8, 2.0, -0.4], dtype=DT)


def normal_model(y):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DT), 2.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def bits_model():
    pyro.sample("x", dist.Bernoulli(torch.tensor([0.2, 0.7, 0.5], dtype=DT)).to_event(1))


def test_old_names_are_the_cores_objects():
    assert metropolis.flip_proposal is flip.flip_proposal
    assert metropolis.random_walk_proposal is random_walk.random_walk_proposal
    assert metropolis.mala_log_proposal_density is mala.log_proposal_density
    for module in (flip, random_walk, mala, user_proposal, metropolis):
        assert all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_continuous_core_gives_the_kernels_chains(proposal):
    kernel = MetropolisHastings(normal_model, proposal, step_size=0.4, model_args=(Y,))
    state = kernel.init_chains(6, generator=torch.Generator().manual_seed(0))
    module = mala if proposal == "mala" else random_walk
    core = (
        mala.MALAState(state.continuous, state.log_density, state.grad)
        if proposal == "mala"
        else random_walk.RandomWalkState(state.continuous, state.log_density)
    )
    params = (mala.MALAParams if proposal == "mala" else random_walk.RandomWalkParams)(
        torch.full((6,), 0.4, dtype=DT)
    )

    def log_density_fn(z):
        return kernel.log_density_fn(state.discrete, z)

    g_kernel, g_core = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(20):
        state, info = kernel.step_chains(state, generator=g_kernel, warmup=False)
        core, core_info = module.step(g_core, core, log_density_fn, params)
        assert torch.equal(core.position, state.continuous)
        assert torch.equal(core.log_density, state.log_density)
        assert torch.equal(core_info.accept_prob, info["accept_prob"])


def test_flip_core_gives_the_kernels_chains():
    kernel = MetropolisHastings(bits_model)
    state = kernel.init_chains(5, generator=torch.Generator().manual_seed(0))

    def log_density_fn(x):
        return kernel.log_density_fn(x, state.continuous)

    core = flip.init(state.discrete, log_density_fn)
    assert torch.equal(core.log_density, state.log_density)
    g_kernel, g_core = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    for _ in range(30):
        state, _ = kernel.step_chains(state, generator=g_kernel)
        core, info = flip.step(g_core, core, log_density_fn, kernel.target.cardinalities)
        assert torch.equal(core.position, state.discrete)
    assert info.proposal.shape == (5, 3) and info.accepted.dtype == torch.bool


def test_flip_proposal_changes_exactly_one_coordinate_to_another_value():
    x = torch.randint(3, (2000, 4), generator=torch.Generator().manual_seed(0))
    cards = torch.tensor([3, 3, 3, 3])
    new = flip.flip_proposal(x, cards, torch.Generator().manual_seed(1))
    assert bool(((new != x).sum(-1) == 1).all())
    assert bool((new < 3).all())


@pytest.mark.parametrize("module", [random_walk, mala])
def test_continuous_cores_are_pure(module):
    def log_density_fn(z):
        return -0.5 * (z**2).sum(-1)

    position = torch.randn(4, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    copy = position.clone()
    state = module.init(position, log_density_fn)
    params = (mala.MALAParams if module is mala else random_walk.RandomWalkParams)(
        torch.full((4,), 0.5, dtype=DT)
    )
    first, _ = module.step(torch.Generator().manual_seed(3), state, log_density_fn, params)
    again, info = module.step(torch.Generator().manual_seed(3), state, log_density_fn, params)
    assert torch.equal(position, copy)  # inputs not mutated
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert first.position.shape == (4, 3) and info.accept_prob.shape == (4,)


def test_mala_proposal_density_is_the_gaussian_around_the_drift():
    z, grad = torch.zeros(1, 2, dtype=DT), torch.tensor([[1.0, -2.0]], dtype=DT)
    step = torch.tensor([0.5], dtype=DT)
    z_to = torch.tensor([[0.3, 0.1]], dtype=DT)
    mean = z + 0.5 * step**2 * grad
    exact = dist.Normal(mean, step).log_prob(z_to).sum(-1)
    constant = dist.Normal(mean, step).log_prob(mean).sum(-1)  # the same both ways
    assert torch.allclose(mala.log_proposal_density(z_to, z, grad, step), exact - constant)


def test_user_proposal_core_accepts_with_the_hastings_ratio():
    # A proposal that always moves to 1 with log q_forward = -inf: never accepted.
    def proposal(position, generator):
        (z,) = position
        return (torch.ones_like(z),), torch.full(z.shape[:1], -torch.inf), torch.zeros(len(z))

    state = user_proposal.init((torch.zeros(3, 1),), lambda z: -0.5 * (z**2).sum(-1))
    g = torch.Generator().manual_seed(0)
    new, info = user_proposal.step(g, state, lambda z: -0.5 * (z**2).sum(-1), proposal)
    assert bool(info.accepted.all()) and torch.equal(new.position[0], torch.ones(3, 1))


def test_user_proposal_output_is_checked():
    with pytest.raises(TypeError, match="must return"):
        user_proposal.check_proposal_output({"mu": torch.zeros(2)}, {"mu"}, 2)
    with pytest.raises(ValueError, match="exactly the sites"):
        user_proposal.check_proposal_output(({"nu": torch.zeros(2)}, 0.0, 0.0), {"mu"}, 2)
    with pytest.raises(ValueError, match="log_q_backward"):
        user_proposal.check_proposal_output(
            ({"mu": torch.zeros(2)}, 0.0, torch.zeros(2, 1)), {"mu"}, 2
        )


def test_continuous_mh_update_rejects_an_unknown_proposal():
    kernel = MetropolisHastings(normal_model, model_args=(Y,))
    state = kernel.init_chains(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="proposal"):
        metropolis.continuous_mh_update(
            state, kernel.log_density_fn, torch.Generator(), "hmc", False, True, 0.234
        )


def test_the_strategy_is_picked_once():
    """After _prepare the step no longer reads kernel.proposal."""
    kernel = MetropolisHastings(normal_model, "mala", model_args=(Y,))
    state = kernel.init_chains(2, generator=torch.Generator().manual_seed(0))
    kernel.proposal = "not a proposal"  # a per-step lookup would fail here
    state, info = kernel.step_chains(state, generator=torch.Generator().manual_seed(1))
    assert info["accept_prob"].shape == (2,)
