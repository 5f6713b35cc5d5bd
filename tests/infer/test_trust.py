"""Regression tests for the review's defects 4, 5 and 6 (issue 9) and test T3."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from pyrogen.infer import DiscreteGibbs, MetropolisHastings, sample
from pyrogen.infer.adaptation import adaptation_steps


def _bits_and_binomial():
    pyro.sample("bits", dist.Bernoulli(torch.full((20,), 0.5)).to_event(1))
    pyro.sample("n", dist.Binomial(400, 0.3))


def test_sweep_evaluates_each_coordinate_at_its_own_cardinality():
    """Defect 5: 20 bits + one Binomial(400) cost 1 + 20 * 1 + 400 = 421 evaluations per
    sweep: the start state, then k_d - 1 per coordinate, the current state's log joint being
    carried from update to update (8,421 when every coordinate was evaluated at the largest
    cardinality)."""
    kernel = DiscreteGibbs(_bits_and_binomial, scan="systematic")
    count = [0]
    inner = kernel.log_joint_fn

    def counting(d):
        count[0] += d.shape[:-1].numel()
        return inner(d)

    kernel.log_joint_fn = counting
    g = torch.Generator().manual_seed(0)
    state = kernel.init_chains(3, generator=g)
    count[0] = 0
    kernel.step_chains(state, generator=g)
    assert count[0] == 3 * 421
    # Random scan: chains update different coordinates in one call; still sum of k_d.
    kernel.scan = "random"
    count[0] = 0
    new, _ = kernel.step_chains(state, generator=g)
    assert count[0] < 3 * 21 * 401
    assert int(new.discrete[:, -1].max()) <= 400


def _two_of_six():
    x = pyro.sample("x", dist.Bernoulli(torch.full((6,), 0.5)).to_event(1))
    pyro.factor("two", torch.where(x.sum(-1) == 2, 0.0, -torch.inf))


def test_zero_density_regions_start_inside_the_support():
    """Defect 4: chains start where the density is finite and sample the constraint exactly."""
    pyro.set_rng_seed(0)
    mcmc = MCMC(DiscreteGibbs(_two_of_six), num_samples=200, warmup_steps=10, disable_progbar=True)
    mcmc.run()
    assert torch.all(mcmc.get_samples()["x"].sum(-1) == 2)
    idata = sample(DiscreteGibbs(_two_of_six), 64, 20, 5, seed=0, progress=False)
    assert (idata.posterior["x"].values.sum(-1) == 2).all()


def _one_hot_constraint():
    x = pyro.sample("x", dist.Bernoulli(torch.full((3,), 0.5)).to_event(1))
    pyro.factor("never", torch.where(x.sum(-1) == 2, 0.0, -torch.inf))
    pyro.factor("impossible", torch.where(x[..., 0] == x[..., 1], -torch.inf, 0.0))


def test_a_site_with_no_finite_value_is_named():
    kernel = DiscreteGibbs(_one_hot_constraint)
    g = torch.Generator().manual_seed(0)
    state = kernel.init_chains(1, generator=g, initial_params={"x": torch.tensor([1.0, 0, 1])})
    # From (1, 0, 1): x[2] can only be 1, x[0] only 1, x[1] only 0 -- fine; a state from which
    # one coordinate has no finite value must raise with the site's name.
    bad = state._replace(discrete=torch.tensor([[1, 1, 1]]))
    with pytest.raises(ValueError, match=r"'x'\[\d\]"):
        for _ in range(5):
            bad, _ = kernel.step_chains(bad, generator=g)
    with pytest.raises(ValueError, match="initial_params"):
        kernel.init_chains(1, generator=g, initial_params={"x": torch.tensor([1.0, 1, 1])})


def _normal():
    pyro.sample("x", dist.Normal(0.0, 1.0))


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_first_draw_after_warmup_is_from_the_target(proposal):
    """Defect 6: across 20,000 chains the first post-warm-up draw of N(0, 1) has variance 1
    (0.91-0.92 when the step size was adapted until the last warm-up step). The standard
    error of the variance is sqrt(2 / 20000) = 0.010; the bound is 4 standard errors
    (false-failure rate below 1e-4)."""
    idata = sample(
        MetropolisHastings(_normal, proposal=proposal), 20000, 1, 100, seed=1, progress=False
    )
    x = torch.as_tensor(idata.posterior["x"].values[:, 0])
    assert abs(float(x.var()) - 1.0) < 4 * math.sqrt(2 / 20000)


def test_step_size_is_fixed_after_warmup_in_sample_and_mcmc():
    """T3: no adaptation after warm-up, in pyrogen.infer.sample and in pyro.infer.MCMC."""
    idata = sample(MetropolisHastings(_normal), 8, 30, 40, seed=0, progress=False)
    eps = idata.sample_stats["step_size"].values  # (chain, draw)
    assert (eps == eps[:, :1]).all()
    assert adaptation_steps(40) == 32

    seen: dict[str, list[float]] = {"Warmup": [], "Sample": []}

    def hook(kernel, params, stage, i):
        seen[stage].append(float(kernel.last_info["step_size"][0]))

    pyro.set_rng_seed(0)
    kernel = MetropolisHastings(_normal)
    MCMC(kernel, num_samples=30, warmup_steps=40, hook_fn=hook, disable_progbar=True).run()
    warm, post = seen["Warmup"], seen["Sample"]
    assert len(set(warm[:32])) > 1  # it did adapt
    assert len(set(warm[32:] + post)) == 1  # and then stopped, before warm-up ended
