"""Contract tests over every pyrogen kernel, and bad-input tests.

On a machine with fewer than ``num_chains + 1`` CPUs, ``pyro.infer.MCMC`` draws chains one
after another with the same kernel object (with a warning, filtered here); otherwise it forks
one process per chain. Both paths are exercised (the second by pretending to have 8 CPUs).
"""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stdout

import arviz as az
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import HMC, MCMC, NUTS

from pyrogen.infer import (
    BlockGibbs,
    DiscreteGibbs,
    DiscreteLangevin,
    GibbsWithGradients,
    GibbsWithinHMC,
    LocallyBalanced,
    MetropolisHastings,
    VectorizedKernel,
)
from tests.common import (
    COMPOSITION_Y,
    DT,
    categorical_model,
    composition_model,
    ising_model,
    make_rbm,
)

pytestmark = pytest.mark.filterwarnings("ignore:num_chains=3 is more than available_cpu")

MIXED_Y = torch.tensor([0.2, 2.3, 1.9], dtype=DT)


def mixed_model(y):
    """A constrained continuous site and a plate of binary sites."""
    scale = pyro.sample("scale", dist.HalfNormal(torch.tensor(1.0, dtype=DT)))
    with pyro.plate("data", y.shape[-1]):
        z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.3, dtype=DT)))
        pyro.sample("y", dist.Normal(2.0 * z, scale), obs=y)


def normal_model(y):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DT), 2.0))
    pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def gmm_model(data):
    loc = pyro.sample("loc", dist.Normal(torch.tensor([-2.0, 2.0], dtype=DT), 1.0).to_event(1))
    with pyro.plate("data", data.shape[-1]):
        z = pyro.sample("z", dist.Categorical(torch.ones(2, dtype=DT) / 2))
        pyro.sample("obs", dist.Normal(loc[z], 1.0), obs=data)


def lone_categorical_model(y):
    """Only integer-valued latent draws: Pyro's summary() cannot average int64 tensors."""
    a = pyro.sample("a", dist.Categorical(torch.ones(4, dtype=DT) / 4))
    pyro.sample("y", dist.Normal(a.to(DT), 1.0), obs=y)


# name -> (kernel factory, model args, {site: shape}, initial values in constrained space)
KERNELS = {
    "block_gibbs_joint": (
        lambda: BlockGibbs(make_rbm(4, 3), "joint"),
        (),
        {"v": (4,), "h": (3,)},
        {"v": torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=DT)},
    ),
    "block_gibbs_gaussian": (
        lambda: BlockGibbs(make_rbm(4, 3, "gaussian")),
        (),
        {"v": (4,)},
        {"v": torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=DT)},
    ),
    "discrete_gibbs": (
        lambda: DiscreteGibbs(categorical_model, "systematic"),
        (),
        {"a": (), "c": (), "b": (2, 3)},
        {
            "a": torch.tensor(2),
            "c": torch.tensor(1.0, dtype=DT),
            "b": torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=DT),
        },
    ),
    "discrete_gibbs_blocks": (
        lambda: DiscreteGibbs(categorical_model),  # b is a plate block
        (),
        {"a": (), "c": (), "b": (2, 3)},
        {
            "a": torch.tensor(1),
            "c": torch.tensor(0.0, dtype=DT),
            "b": torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=DT),
        },
    ),
    "locally_balanced": (
        lambda: LocallyBalanced(categorical_model, "barker"),
        (),
        {"a": (), "c": (), "b": (2, 3)},
        {
            "a": torch.tensor(2),
            "c": torch.tensor(1.0, dtype=DT),
            "b": torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=DT),
        },
    ),
    "gibbs_with_gradients": (
        lambda: GibbsWithGradients(categorical_model, moves_per_step=2),
        (),
        {"a": (), "c": (), "b": (2, 3)},
        {
            "a": torch.tensor(0),
            "c": torch.tensor(1.0, dtype=DT),
            "b": torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=DT),
        },
    ),
    "discrete_langevin": (
        lambda: DiscreteLangevin(categorical_model),
        (),
        {"a": (), "c": (), "b": (2, 3)},
        {
            "a": torch.tensor(1),
            "c": torch.tensor(1.0, dtype=DT),
            "b": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=DT),
        },
    ),
    "discrete_gibbs_lone_categorical": (
        lambda: DiscreteGibbs(lone_categorical_model),
        (torch.tensor(2.0, dtype=DT),),
        {"a": ()},
        {"a": torch.tensor(3)},
    ),
    "metropolis_lone_categorical": (
        lambda: MetropolisHastings(lone_categorical_model),
        (torch.tensor(2.0, dtype=DT),),
        {"a": ()},
        {"a": torch.tensor(1)},
    ),
    "metropolis_mixed": (
        lambda: MetropolisHastings(mixed_model),
        (MIXED_Y,),
        {"scale": (), "z": (3,)},
        {"scale": torch.tensor(0.7, dtype=DT), "z": torch.tensor([0.0, 1.0, 1.0], dtype=DT)},
    ),
    "metropolis_mala": (
        lambda: MetropolisHastings(normal_model, "mala", step_size=0.5),
        (torch.tensor(1.5, dtype=DT),),
        {"mu": ()},
        {"mu": torch.tensor(-3.0, dtype=DT)},
    ),
    "gibbs_within_hmc": (
        lambda: GibbsWithinHMC(HMC(gmm_model, step_size=0.3, num_steps=3)),
        (torch.tensor([-2.1, 1.8, 2.5, -1.6], dtype=DT),),
        {"loc": (2,), "z": (4,)},
        {"loc": torch.tensor([-1.0, 1.0], dtype=DT), "z": torch.tensor([0, 1, 1, 0])},
    ),
}


def run_mcmc(name, num_chains, seed=0, initial_params=None, num_samples=8, warmup_steps=4):
    factory, args, _, _ = KERNELS[name]
    pyro.set_rng_seed(seed)
    mcmc = MCMC(
        factory(),
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        initial_params=initial_params,
        disable_progbar=True,
    )
    mcmc.run(*args)
    return mcmc


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("num_chains", [1, 3])
def test_runs_under_mcmc(name, num_chains):
    _, _, shapes, _ = KERNELS[name]
    mcmc = run_mcmc(name, num_chains)
    samples = mcmc.get_samples(group_by_chain=True)
    assert {k: tuple(v.shape) for k, v in samples.items()} == {
        k: (num_chains, 8, *s) for k, s in shapes.items()
    }
    assert all(bool(torch.isfinite(v).all()) for v in samples.values())
    with redirect_stdout(io.StringIO()) as out:
        mcmc.summary()
    assert "r_hat" in out.getvalue()
    idata = az.from_pyro(mcmc, log_likelihood=False)
    assert set(idata.posterior.data_vars) == set(shapes)
    assert idata.posterior.sizes["chain"] == num_chains
    assert idata.sample_stats["diverging"].shape == (num_chains, 8)
    if num_chains > 1:  # chains are distinct draws, not copies of one another
        first = samples[next(iter(shapes))]
        assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize("name", list(KERNELS))
def test_same_seed_same_chain(name):
    a = run_mcmc(name, 1, seed=3).get_samples()
    b = run_mcmc(name, 1, seed=3).get_samples()
    c = run_mcmc(name, 1, seed=4).get_samples()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", list(KERNELS))
def test_initial_params_are_honoured(name):
    factory, args, _, initial = KERNELS[name]
    kernel = factory()
    kept = copy.deepcopy(initial)
    # What MCMC does for each chain: set initial_params (unconstrained), setup, read them.
    kernel.setup(0, *args)
    unconstrained = {
        k: kernel.transforms[k](v) if k in kernel.transforms else v for k, v in initial.items()
    }
    kernel.initial_params = unconstrained
    kernel.setup(0, *args)
    start = kernel.initial_params
    for k, v in unconstrained.items():
        assert torch.allclose(start[k].to(DT), v.to(DT)), k
    assert all(torch.equal(initial[k], kept[k]) for k in initial)  # inputs not mutated
    kernel.cleanup()
    # Through MCMC with 3 chains (one start per chain) it runs and keeps the shapes.
    stacked = {k: torch.stack([v] * 3) for k, v in unconstrained.items()}
    mcmc = run_mcmc(name, 3, initial_params=stacked, num_samples=2, warmup_steps=0)
    assert set(mcmc.get_samples()) >= set(initial)


def test_initial_params_reach_the_first_draw():
    """With a tiny fixed step the first MH draw sits next to the given start."""

    pyro.set_rng_seed(0)
    kernel = MetropolisHastings(normal_model, step_size=1e-6, adapt_step_size=False)
    mcmc = MCMC(
        kernel,
        num_samples=1,
        warmup_steps=0,
        disable_progbar=True,
        initial_params={"mu": torch.tensor(-3.0, dtype=DT)},
    )
    mcmc.run(torch.tensor(1.5, dtype=DT))
    assert abs(float(mcmc.get_samples()["mu"][0]) + 3.0) < 1e-4


def test_rbm_is_not_mutated():
    rbm = make_rbm(4, 3)
    before = copy.deepcopy(rbm.state_dict())
    pyro.set_rng_seed(0)
    MCMC(BlockGibbs(rbm), num_samples=5, warmup_steps=2, disable_progbar=True).run()
    assert all(torch.equal(before[k], v) for k, v in rbm.state_dict().items())


def test_forked_chains(monkeypatch):
    """Pyro's multiprocessing path (taken when CPUs > num_chains) works and is seeded."""
    monkeypatch.setattr("torch.multiprocessing.cpu_count", lambda: 8)
    # libgomp's thread pool does not survive fork: a parent that ran multi-threaded torch ops
    # (a serial run on 2 cores; under xdist conftest already sets 1 thread) deadlocks the
    # forked workers. One intra-op thread for the forked run, as Pyro's docs advise.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = run_mcmc("discrete_gibbs", 2, seed=5).get_samples(group_by_chain=True)
        b = run_mcmc("discrete_gibbs", 2, seed=5).get_samples(group_by_chain=True)
    finally:
        torch.set_num_threads(threads)
    assert a["a"].shape == (2, 8)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ VectorizedKernel
@pytest.mark.parametrize("name", [n for n in KERNELS if n != "gibbs_within_hmc"])
def test_vectorized_protocol(name):
    factory, args, shapes, initial = KERNELS[name]
    kernel = factory()
    if args:
        kernel.model_args = args
    assert isinstance(kernel, VectorizedKernel)
    g = torch.Generator().manual_seed(0)
    state = kernel.init_chains(5, generator=g, initial_params=initial)
    values = kernel.chain_values(state)
    for k, v in initial.items():  # initial values are constrained site values, broadcast
        assert torch.allclose(values[k].to(DT), v.to(DT).expand(5, *v.shape)), k
    state, info = kernel.step_chains(state, generator=g, warmup=True)
    assert info["accept_prob"].shape == (5,)
    assert {k: tuple(v.shape) for k, v in kernel.chain_values(state).items()} == {
        k: (5, *s) for k, s in shapes.items()
    }
    assert kernel.device == torch.device("cpu")


def test_vectorized_same_seed_same_chains():
    kernel = MetropolisHastings(mixed_model, model_args=(MIXED_Y,))

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        state = kernel.init_chains(4, generator=g)
        for _ in range(5):
            state, _ = kernel.step_chains(state, generator=g, warmup=True)
        return kernel.chain_values(state)

    a, b = run(1), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------- bad input
def continuous_only():
    pyro.sample("mu", dist.Normal(0.0, 1.0))


def test_discrete_gibbs_rejects_models_without_discrete_sites():
    with pytest.raises(ValueError, match="no latent discrete sites"):
        _ = DiscreteGibbs(continuous_only).target


def test_discrete_gibbs_rejects_continuous_sites():
    with pytest.raises(ValueError, match="continuous latent sites"):
        _ = DiscreteGibbs(mixed_model, model_args=(MIXED_Y,)).target


def test_non_enumerable_discrete_site_is_rejected():
    def poisson_model():
        pyro.sample("n", dist.Poisson(3.0))

    with pytest.raises(ValueError, match="cannot enumerate"):
        _ = DiscreteGibbs(poisson_model).target


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"step_size": 0.0}, ValueError),
        ({"step_size": -0.1}, ValueError),
        ({"step_size": "0.1"}, TypeError),
        ({"target_accept": 1.0}, ValueError),
        ({"proposal": "hmc"}, ValueError),
        ({"adapt_step_size": 1}, TypeError),
    ],
)
def test_metropolis_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        MetropolisHastings(normal_model, **kwargs)


def test_bad_scan_and_model_arguments():
    with pytest.raises(ValueError, match="scan"):
        DiscreteGibbs(ising_model, scan="backwards")
    with pytest.raises(TypeError, match="model"):
        DiscreteGibbs("not a model")
    with pytest.raises(TypeError, match="model_args"):
        MetropolisHastings(normal_model, model_args=torch.tensor(1.0))


@pytest.mark.parametrize("num_chains", [0, -2])
def test_num_chains_must_be_positive(num_chains):
    g = torch.Generator().manual_seed(0)
    for kernel in (BlockGibbs(make_rbm(4, 3)), DiscreteGibbs(ising_model)):
        with pytest.raises(ValueError, match="num_chains"):
            kernel.init_chains(num_chains, generator=g)


def test_block_gibbs_rejects_bad_arguments():
    rbm = make_rbm(4, 3)
    with pytest.raises(TypeError, match="rbm"):
        BlockGibbs(torch.zeros(3))
    with pytest.raises(ValueError, match="model"):
        BlockGibbs(rbm, model="conditional")
    with pytest.raises(ValueError, match="visible_log_odds"):
        BlockGibbs(rbm, visible_log_odds=torch.zeros(5, dtype=DT))
    with pytest.raises(ValueError, match="Gaussian"):
        BlockGibbs(make_rbm(4, 3, "gaussian"), visible_log_odds=torch.zeros(4, dtype=DT))
    with pytest.raises(ValueError, match="no model arguments"):
        MCMC(BlockGibbs(rbm), num_samples=2, disable_progbar=True).run(torch.ones(4))
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="binary"):
        BlockGibbs(rbm).init_chains(
            2, generator=g, initial_params={"v": torch.full((4,), 0.5, dtype=DT)}
        )


def test_bad_initial_params():
    kernel = DiscreteGibbs(categorical_model)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="not in its support"):
        kernel.init_chains(
            2,
            generator=g,
            initial_params={
                "a": torch.tensor(3),
                "c": torch.tensor(1.0, dtype=DT),
                "b": torch.zeros(2, 3, dtype=DT),
            },
        )
    with pytest.raises(ValueError, match="unknown sites"):
        kernel.init_chains(2, generator=g, initial_params={"q": torch.tensor(0)})
    with pytest.raises(ValueError, match="shape"):
        kernel.init_chains(
            2,
            generator=g,
            initial_params={
                "a": torch.zeros(3, dtype=torch.long),
                "c": torch.tensor(1.0, dtype=DT),
                "b": torch.zeros(2, 3, dtype=DT),
            },
        )


def test_bad_user_proposal():
    def wrong_sites(values, generator):
        return {"nu": values["mu"]}, torch.zeros(2), torch.zeros(2)

    kernel = MetropolisHastings(
        normal_model, wrong_sites, model_args=(torch.tensor(0.0, dtype=DT),)
    )
    g = torch.Generator().manual_seed(0)
    state = kernel.init_chains(2, generator=g)
    with pytest.raises(ValueError, match="exactly the sites"):
        kernel.step_chains(state, generator=g)


def test_gibbs_within_hmc_rejects_bad_input():
    with pytest.raises(TypeError, match="HMC or NUTS"):
        GibbsWithinHMC(MetropolisHastings(normal_model))
    with pytest.raises(ValueError, match="potential_fn"):
        GibbsWithinHMC(NUTS(potential_fn=lambda z: 0.0))
    args = (torch.tensor([-2.1, 1.8], dtype=DT),)
    with pytest.raises(ValueError, match="not latent discrete sites"):
        GibbsWithinHMC(NUTS(gmm_model), gibbs_sites=["loc"]).setup(0, *args)
    with pytest.raises(ValueError, match="no continuous latent sites"):
        GibbsWithinHMC(NUTS(ising_model)).setup(0)
    with pytest.raises(ValueError, match="no latent discrete sites"):
        GibbsWithinHMC(NUTS(normal_model)).setup(0, torch.tensor(0.0, dtype=DT))


def test_composition_model_runs_with_every_discrete_kernel():
    """rbm.model() inside a larger model: the same posterior object for all kernels."""
    model = composition_model(make_rbm(6, 3, seed=1))
    for kernel in (
        DiscreteGibbs(model),
        MetropolisHastings(model),
        LocallyBalanced(model),
        GibbsWithGradients(model),
        DiscreteLangevin(model),
    ):
        pyro.set_rng_seed(0)
        mcmc = MCMC(kernel, num_samples=5, warmup_steps=2, disable_progbar=True)
        mcmc.run(COMPOSITION_Y)
        assert mcmc.get_samples()["v"].shape == (5, 6)
