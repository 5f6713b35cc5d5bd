"""pyrogen.diagnostics converters on ArviZ 1.x: from_pyro for any kernel under pyro's MCMC,
exact log-likelihoods of Categorical-indexed models, per-chain kernel statistics (swap
rates of a tempering kernel), and array-likes of every kind (numpy, torch, jax)."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr
from pyro.infer import MCMC, NUTS, Predictive, RandomWalkKernel

from pyrogen import diagnostics
from pyrogen.infer import DiscreteGibbs, MetropolisHastings, sample

Y = torch.tensor([-2.1, -1.7, 0.1, 2.2, 1.9])
LOCS = torch.tensor([-2.0, 0.0, 2.0])


def mixture(y):
    """Component means ``locs`` and a Categorical assignment that indexes them."""
    locs = pyro.sample("locs", dist.Normal(LOCS, 1.0).to_event(1))
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(locs[z], 0.5), obs=y)


def fixed_locs_mixture(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(LOCS[z], 0.5), obs=y)


def normal_mean(y):
    m = pyro.sample("m", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(m, 1.0), obs=y)


def one_normal():
    pyro.sample("m", dist.Normal(0.0, 1.0))


def run(kernel, *args, num_chains=2, num_samples=30):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "chains drawn sequentially"
        mcmc = MCMC(kernel, num_samples, 20, num_chains=num_chains, disable_progbar=True)
        mcmc.run(*args)
    return mcmc


# ------------------------------------------------------------------ from_pyro
@pytest.mark.parametrize(
    ("make_kernel", "model"),
    [(DiscreteGibbs, fixed_locs_mixture), (MetropolisHastings, mixture)],
    ids=["DiscreteGibbs", "MetropolisHastings"],
)
def test_categorical_indexed_log_likelihood_is_exact(make_kernel, model):
    """log N(y_n | locs[z_n], 0.5) of every draw, against the same indexing by hand."""
    mcmc = run(make_kernel(model), Y)
    idata = diagnostics.from_pyro(mcmc)
    draws = mcmc.get_samples(group_by_chain=True)
    z = draws["z"].long()  # (chain, draw, 5)
    locs = draws["locs"] if "locs" in draws else LOCS.expand(2, 30, 3)
    expected = dist.Normal(torch.gather(locs, -1, z), 0.5).log_prob(Y)  # (chain, draw, 5)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "y_dim_0")
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(idata.observed_data["y"].values, Y.numpy())
    assert idata.posterior["z"].dtype.kind == "i"  # indices stay integers


class TemperedRandomWalk(RandomWalkKernel):
    """RandomWalkKernel reporting what a replica-exchange kernel would: swap rates between
    its adjacent temperatures (a vector per chain) and a step size (a number per chain)."""

    def diagnostics(self):
        out = super().diagnostics()
        out["swap rates"] = torch.tensor([0.25, 0.5, 0.75])
        out["step size"] = 0.3
        out["kernel name"] = "tempered"  # not a number: left out
        return out


def test_per_chain_kernel_statistics_become_sample_stats():
    mcmc = run(TemperedRandomWalk(one_normal), num_chains=2)
    stats = diagnostics.from_pyro(mcmc, wall_time=1.25).sample_stats
    assert stats["swap_rates"].dims == ("chain", "swap_rates_dim_0")
    np.testing.assert_array_equal(stats["swap_rates"].values, [[0.25, 0.5, 0.75]] * 2)
    assert stats["step_size"].dims == ("chain",)
    np.testing.assert_array_equal(stats["step_size"].values, [0.3, 0.3])
    rates = [mcmc.diagnostics()["acceptance rate"][f"chain {i}"] for i in range(2)]
    np.testing.assert_allclose(stats["acceptance_rate"].values, rates)
    assert "kernel_name" not in stats
    assert stats.attrs["wall_time"] == 1.25


def test_prior_and_posterior_predictive_groups():
    mcmc = run(NUTS(normal_mean), Y[:3], num_chains=2, num_samples=10)
    prior = Predictive(normal_mean, num_samples=7)(Y[:3])
    predictive = Predictive(normal_mean, mcmc.get_samples())(Y[:3])
    idata = diagnostics.from_pyro(mcmc, prior=prior, posterior_predictive=predictive)
    assert idata.prior["m"].shape == (1, 7)  # Predictive gave (7, 1): the plate's dim
    assert idata.prior_predictive["y"].shape == (1, 7, 3)
    assert idata.posterior_predictive["y"].shape == (2, 10, 3)
    np.testing.assert_array_equal(
        idata.posterior_predictive["y"].values.reshape(20, 3), predictive["y"].numpy()
    )
    # NUTS reports divergences: a (chain, draw) boolean, as az.from_pyro gave.
    assert idata.sample_stats["diverging"].dims == ("chain", "draw")
    assert idata.sample_stats["diverging"].dtype == bool


def test_from_pyro_rejects_what_is_not_a_run():
    with pytest.raises(TypeError, match=r"pyro\.infer\.MCMC"):
        diagnostics.from_pyro({"x": torch.zeros(2, 5)})
    mcmc = run(RandomWalkKernel(one_normal))
    with pytest.raises(ValueError, match="array sources only"):
        diagnostics.to_inference_data(mcmc, sample_stats={"a": torch.zeros(2, 30)})


def test_summarize_takes_an_mcmc_run_directly():
    mcmc = run(RandomWalkKernel(one_normal))
    direct = diagnostics.summarize(mcmc)
    converted = diagnostics.summarize(diagnostics.from_pyro(mcmc))
    np.testing.assert_array_equal(direct.values, converted.values)


def test_pyrogen_sample_returns_a_datatree():
    kernel = MetropolisHastings(normal_mean, model_args=(Y[:3],))
    idata = sample(kernel, 4, 50, 20, seed=0, progress=False, check=False)
    assert isinstance(idata, xr.DataTree)
    assert {"posterior", "sample_stats"} <= set(idata.children)
    assert idata.sample_stats["step_size"].dims == ("chain", "draw")  # the adapted step
    assert idata.sample_stats["acceptance_rate"].dims == ("chain",)
    assert diagnostics.wall_time_of(idata) > 0


# ------------------------------------------------------------------ array-likes
class ForeignArray:
    """An array of another framework: numpy reads it only through ``__array__`` (as it reads
    jax, CuPy-on-host or dask arrays)."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)


def _draws(seed=0):
    return np.random.default_rng(seed).normal(size=(4, 200, 2))


def _bfloat16(a):
    return torch.as_tensor(a).to(torch.bfloat16)


@pytest.mark.parametrize(
    "wrap",
    [
        np.asarray,
        torch.as_tensor,
        lambda a: torch.as_tensor(a).requires_grad_(True),
        _bfloat16,
        ForeignArray,
        lambda a: a.tolist(),
    ],
    ids=["numpy", "torch", "torch-grad", "torch-bfloat16", "__array__", "list"],
)
def test_any_array_like_gives_the_same_report(wrap):
    draws = _draws()
    if wrap is _bfloat16:  # the same values as the bfloat16 tensor holds
        draws = _bfloat16(draws).double().numpy()
    reference = diagnostics.summarize({"x": draws})
    for source in (wrap(draws), {"x": wrap(draws)}):
        table = diagnostics.summarize(source)
        np.testing.assert_allclose(table.values, reference.values, rtol=1e-6)
        tree = diagnostics.to_inference_data(source)
        assert tree.posterior["x"].shape == (4, 200, 2)


def test_jax_arrays_are_accepted():
    jnp = pytest.importorskip("jax.numpy")
    draws = _draws()
    table = diagnostics.summarize({"x": jnp.asarray(draws)})
    reference = diagnostics.summarize({"x": draws})
    np.testing.assert_allclose(table.values, reference.values, rtol=1e-6)  # jax: float32
    states = jnp.asarray([0, 1, 1, 1])
    assert diagnostics.total_variation(states, jnp.asarray([0.25, 0.75])) == 0.0


def test_dataset_and_datatree_sources():
    draws = _draws()
    dataset = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
    # Draw-major storage is transposed, not misread: the dims say which axis is which.
    from_dataset = diagnostics.to_inference_data(dataset.transpose("draw", "k", "chain"), 2.0)
    assert from_dataset.posterior["x"].dims == ("chain", "draw", "k")
    np.testing.assert_array_equal(from_dataset.posterior["x"].values, draws)
    assert diagnostics.wall_time_of(from_dataset) == 2.0
    hand_written = xr.DataTree.from_dict({"posterior": dataset})  # e.g. built by NumPyro users
    np.testing.assert_array_equal(
        diagnostics.summarize(hand_written).values,
        diagnostics.summarize({"x": draws}).values,
    )


def test_total_variation_of_a_datatree_variable():
    states = np.array([[[0, 1], [1, 1]], [[1, 0], [1, 1]]])  # (chain, draw, bits)
    tree = diagnostics.to_inference_data({"v": states.astype(float), "s": np.zeros((2, 2))})
    probs = [0.0, 0.25, 0.25, 0.5]  # codes: [0,1] -> 2, [1,1] -> 3, [1,0] -> 1
    assert diagnostics.total_variation(tree, probs, var_name="v") == 0.0
    with pytest.raises(ValueError, match="pass var_name"):
        diagnostics.total_variation(tree, probs)
    with pytest.raises(ValueError, match="not in the posterior"):
        diagnostics.total_variation(tree, probs, var_name="w")
    with pytest.raises(ValueError, match="DataTree or InferenceData source only"):
        diagnostics.total_variation(states, probs, var_name="v")
